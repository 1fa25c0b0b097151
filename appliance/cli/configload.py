"""Load and cross-check the three configuration files as one unit."""

from __future__ import annotations

from appliance.config.authkeys import AuthKeys, load_authkeys
from appliance.config.extension import Extension, load_extension
from appliance.config.hacf import HaConfig, load_hacf, local_node_name
from appliance.config.haresources import ResourceGroup, load_haresources
from appliance.errors import ConfigError, ConfigErrors
from appliance.paths import Paths


def load_all(
    paths: Paths, local: str | None = None, probe_stonith: bool = True
) -> tuple[HaConfig, AuthKeys, list[ResourceGroup], Extension]:
    """All errors of all three files at once, so the operator fixes them in one go.
    probe_stonith: ask cluster-glue whether the STONITH type exists (a subprocess: start and
    `-t` only; a running daemon's reload must not block its loop on it, and a changed device
    applies at the next start anyway, where it is checked)."""
    errors: list[ConfigError] = []
    local = local or local_node_name(paths.etc)
    cfg = keys = None
    groups: list[ResourceGroup] = []
    try:
        cfg = load_hacf(paths.hacf, local)
    except ConfigErrors as exc:
        errors += exc.errors
    try:
        keys = load_authkeys(paths.authkeys)
    except ConfigErrors as exc:
        errors += exc.errors
    try:
        groups = load_haresources(paths.haresources, cfg.nodes if cfg else None)
    except ConfigErrors as exc:
        errors += exc.errors
    ext = Extension()
    try:
        ext = load_extension(paths.extension, [g.key for g in groups])
    except ConfigErrors as exc:
        errors += exc.errors
    if probe_stonith and cfg is not None and cfg.stonith is not None:
        errors += _check_stonith_type(cfg)
    if errors:
        raise ConfigErrors(errors)
    assert cfg is not None and keys is not None
    return cfg, keys, groups, ext


# HaConfig fields that say nothing about the cluster's behaviour (bookkeeping of the parse).
_NOT_SETTINGS = ("path", "params", "warnings")


def _check_stonith_type(cfg: HaConfig) -> list[ConfigError]:
    """3.0.6 loads the plugin while parsing ha.cf ("Invalid Stonith type [x]" stops the start):
    ask cluster-glue's stonith command whether it knows the type."""
    import subprocess

    from appliance.rsc.stonith import STONITH

    dev = cfg.stonith
    assert dev is not None
    hint = "`stonith -L` lists the installed plugins (cluster-glue)"
    try:
        rc = subprocess.run([STONITH, "-t", dev.type, "-n"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=20).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [ConfigError(cfg.path, dev.line, f"cannot run {STONITH} for {dev.directive}: {exc}", hint)]
    if rc != 0:
        return [ConfigError(cfg.path, dev.line, f"Invalid Stonith type [{dev.type}]", hint)]
    return []


def hacf_changes(old: HaConfig, new: HaConfig) -> list[str]:
    """The ha.cf settings that differ between two parses (reload reports what it cannot apply)."""
    from dataclasses import fields

    return [f.name for f in fields(old) if f.name not in _NOT_SETTINGS
            and getattr(old, f.name) != getattr(new, f.name)]
