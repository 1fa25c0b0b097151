#!/bin/bash
# packaging/toolchain.sh GLIBC OUT LOGDIR PKG=TARBALL...
#
# Builds zlib, bzip2, xz, libffi, OpenSSL, sqlite (static, -fPIC) and CPython 3.11
# (--enable-shared, as PyInstaller needs) with `zig cc -target x86_64-linux-gnu.GLIBC`, so
# no ELF of the interpreter needs a GLIBC symbol newer than GLIBC. Installs into OUT:
#   OUT/bin/{zcc,zc++,zar,zranlib}  compiler wrappers (also used for the bootloader and sdists)
#   OUT/deps                        static C libraries + headers
#   OUT/python                      the interpreter (bin/python3.11)
# PKG=TARBALL: Debian .orig tarballs (python3.11=..., openssl=..., libffi=..., zlib=...,
# bzip2=..., xz-utils=..., sqlite3=...). ZIG must name the zig executable.
# Called by packaging/build, which caches OUT under a key of all inputs.
# Adapted from the packaging study (shared/reference/packaging/build_zig_python.sh);
# every work-around below is explained there.
set -euo pipefail
G=${1:?glibc}; OUT=${2:?out}; L=${3:?logdir}; shift 3
: "${ZIG:?ZIG must point at the zig executable}"
declare -A TB
for kv in "$@"; do TB[${kv%%=*}]=${kv#*=}; done
JOBS=${HBA_JOBS:-2}
P=$OUT/deps; PY=$OUT/python; B=$OUT/work
mkdir -p "$OUT/bin" "$P/lib/pkgconfig" "$P/include" "$B" "$L"
export ZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-$OUT/zig-cache} ZIG_LOCAL_CACHE_DIR=${ZIG_LOCAL_CACHE_DIR:-$OUT/zig-cache}
# zig adds -fsanitize=undefined when no -O is given and makes __DATE__/__TIME__ an error;
# zig rejects "-E -" (stdin) without -x (waf/configure probes): add -x c.
for t in cc c++; do
cat > "$OUT/bin/z$t" <<EOW
#!/bin/sh
case " \$* " in *" -E "*) case " \$* " in *" - "*) case " \$* " in *" -x "*) ;; *) set -- -x c "\$@" ;; esac ;; esac ;; esac
exec "$ZIG" $t -target x86_64-linux-gnu.$G -fno-sanitize=undefined -Wno-error=date-time "\$@"
EOW
done
printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$ZIG" > "$OUT/bin/zar"
printf '#!/bin/sh\nexec "%s" ranlib "$@"\n' "$ZIG" > "$OUT/bin/zranlib"
printf '#!/bin/sh\nexec "%s" objcopy "$@"\n' "$ZIG" > "$OUT/bin/zobjcopy"
chmod +x "$OUT"/bin/*
export CC=$OUT/bin/zcc CXX=$OUT/bin/zc++ AR=$OUT/bin/zar RANLIB=$OUT/bin/zranlib
export PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_LIBDIR=$P/lib/pkgconfig
step() { echo "=== $(date +%T) toolchain: $*"; }
x() { rm -rf "$B/$2"; mkdir -p "$B/$2"; tar -xf "${TB[$1]}" -C "$B/$2" --strip-components=1; cd "$B/$2"; }
t0=$SECONDS
timed() { local s=$SECONDS; "$@"; echo "    $1 took $((SECONDS - s)) s"; }

b_zlib() { x zlib zlib
  CFLAGS="-O2 -fPIC" ./configure --static --prefix="$P" >"$L/tc-zlib.log" 2>&1
  make -j"$JOBS" >>"$L/tc-zlib.log" 2>&1; make install >>"$L/tc-zlib.log" 2>&1; }
b_bzip2() { x bzip2 bzip2
  make -j"$JOBS" CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="-O2 -fPIC -D_FILE_OFFSET_BITS=64" libbz2.a >"$L/tc-bzip2.log" 2>&1
  cp libbz2.a "$P/lib/"; cp bzlib.h "$P/include/"; }
b_xz() { x xz-utils xz
  ./configure --prefix="$P" --libdir="$P/lib" --disable-shared --enable-static --with-pic --disable-xz --disable-xzdec \
    --disable-lzmadec --disable-lzmainfo --disable-scripts --disable-doc --disable-nls CFLAGS=-O2 >"$L/tc-xz.log" 2>&1
  make -j"$JOBS" >>"$L/tc-xz.log" 2>&1; make install >>"$L/tc-xz.log" 2>&1; }
b_libffi() { x libffi libffi
  # 3.4.4's static trampolines do not compile with clang >= 16 (implicit declaration)
  ./configure --prefix="$P" --libdir="$P/lib" --disable-shared --enable-static --with-pic --disable-docs \
    --disable-multi-os-directory --disable-exec-static-tramp CFLAGS=-O2 >"$L/tc-libffi.log" 2>&1
  make -j"$JOBS" >>"$L/tc-libffi.log" 2>&1; make install >>"$L/tc-libffi.log" 2>&1; }
b_openssl() { x openssl openssl
  # openssldir = EL's system CA/config location, so ssl's default paths work on the target
  ./Configure linux-x86_64 no-shared no-tests no-module -fPIC --prefix="$P" --libdir=lib \
    --openssldir=/etc/pki/tls CC="$CC" AR="$AR" RANLIB="$RANLIB" >"$L/tc-openssl.log" 2>&1
  make -j"$JOBS" build_libs >>"$L/tc-openssl.log" 2>&1; make install_dev >>"$L/tc-openssl.log" 2>&1; }
b_sqlite() { x sqlite3 sqlite
  # pyroute2 imports sqlite3 at package import (ndb), so _sqlite3 is required.
  # The amalgamation is generated with the host compiler + tclsh, compiled with zig.
  CC=gcc ./configure >"$L/tc-sqlite.log" 2>&1; make sqlite3.c >>"$L/tc-sqlite.log" 2>&1
  "$CC" -O2 -fPIC -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1 -c sqlite3.c -o sqlite3.o >>"$L/tc-sqlite.log" 2>&1
  "$AR" rcs "$P/lib/libsqlite3.a" sqlite3.o; cp sqlite3.h sqlite3ext.h "$P/include/"
  printf 'prefix=%s\nName: sqlite3\nDescription: sqlite\nVersion: %s\nLibs: -L%s/lib -lsqlite3 -lm -lpthread -ldl\nCflags: -I%s/include\n' \
    "$P" "$(cat VERSION)" "$P" "$P" > "$P/lib/pkgconfig/sqlite3.pc"; }
b_cpython() { x python3.11 cpython
  # zig ships the newest glibc headers (only link stubs are versioned): header-only configure
  # checks leak newer symbols. getauxval (2.16) via <sys/auxv.h> in faulthandler.
  local extra=()
  if [ "$(printf '%s\n' "$G" 2.16 | sort -V | head -1)" != 2.16 ]; then extra+=(ac_cv_header_sys_auxv_h=no); fi
  # setup.py would add the HOST's /usr/include, multiarch dirs and /usr/lib (Debian glibc headers,
  # host readline/ncurses/sqlite). Disable that.
  sed -i -e "s|system_lib_dirs = \['/lib64', '/usr/lib64', '/lib', '/usr/lib'\]|system_lib_dirs = []|" \
         -e "s|system_include_dirs = \['/usr/include'\]|system_include_dirs = []|" \
         -e "s|    def add_multiarch_paths(self):|    def add_multiarch_paths(self):\n        return|" setup.py
  ./configure "${extra[@]}" --prefix="$PY" --enable-shared --with-ensurepip=install --with-openssl="$P" \
    --without-static-libpython CFLAGS="-O2" CPPFLAGS="-I$P/include" \
    LDFLAGS="-L$P/lib -Wl,-rpath,\\\$\$ORIGIN/../lib" LIBS="-ldl -lpthread" >"$L/tc-cpython-configure.log" 2>&1
  # zig's linker does not accept the short -h form of -soname
  sed -i -e 's/-Wl,-h\$(INSTSONAME)/-Wl,-soname,$(INSTSONAME)/' -e 's/-Wl,-h\$@/-Wl,-soname,$@/' Makefile
  # zig refuses a link whose only input is a .so (libpython3.so stub): prebuild it
  make -j"$JOBS" libpython3.11.so >"$L/tc-cpython-make.log" 2>&1
  echo 'void _libpython3_stub(void){}' > stub.c
  "$CC" -shared -Wl,--no-as-needed -o libpython3.so -Wl,-soname,libpython3.so stub.c libpython3.11.so >>"$L/tc-cpython-make.log" 2>&1
  make -j"$JOBS" >>"$L/tc-cpython-make.log" 2>&1
  make install >"$L/tc-cpython-install.log" 2>&1
  if grep -A12 "necessary bits to build these optional modules\|Failed to build these modules" "$L/tc-cpython-make.log"; then :; fi; }

for s in zlib bzip2 xz libffi openssl sqlite cpython; do step "$s"; timed "b_$s"; done
"$PY/bin/python3.11" -c 'import ssl,ctypes,lzma,bz2,zlib,hashlib,sqlite3,_ctypes;print("toolchain python ok:", ssl.OPENSSL_VERSION)'
rm -rf "$B"
step "done in $((SECONDS - t0)) s"
