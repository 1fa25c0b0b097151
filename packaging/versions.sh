# Pinned inputs of packaging/build (sourced). Changing any value changes the cache key
# of the step that uses it, so the next build rebuilds exactly what depends on it.

# glibc the zig-built CPython, its C libraries and the PyInstaller bootloader target.
# 2.12 = EL6; the same toolchain serves EL7 (2.17) too.
TOOLCHAIN_GLIBC=2.12
# Debian source packages whose .orig tarballs are built (apt-get source, deb-src).
# The exact tarballs (and their SHA256, from apt) are resolved at build time; a Debian
# update of any of them changes the toolchain cache key.
SOURCE_PACKAGES="python3.11 openssl libffi zlib bzip2 xz-utils sqlite3"
# PyPI pins
ZIGLANG_VERSION=0.17.1
PYINSTALLER_VERSION=6.22.3
PYINSTALLER_HOOKS_CONTRIB_VERSION=2026.9
# runtime deps of the frozen program (setup.cfg install_requires)
PYROUTE2_VERSION=0.9.7
SDNOTIFY_VERSION=0.3.2
CONFIGOBJ_VERSION=5.0.9
CFFI_VERSION=2.1.1
# EL7: current cryptography, manylinux2014 (glibc 2.17) wheel
CRYPTOGRAPHY_EL7_VERSION=50.0.2
# EL6: "none" = no cryptography in the EL6 program (decision, packaging/README.md "EL6 crypto
# decision"): Heartbeat's wire auth (crc/md5/sha1 HMAC) uses the stdlib hmac/hashlib over
# the OpenSSL 3.0.x this build compiles. "37.0.4" = the last release with a manylinux2010
# (glibc 2.12) wheel, which bundles an outdated OpenSSL 3.0.5; measured, see the README.
CRYPTOGRAPHY_EL6_VERSION=none
