"""Load and cross-check the three configuration files as one unit."""

from __future__ import annotations

from appliance.config.authkeys import AuthKeys, load_authkeys
from appliance.config.extension import Extension, load_extension
from appliance.config.hacf import HaConfig, load_hacf, local_node_name
from appliance.config.haresources import ResourceGroup, load_haresources
from appliance.errors import ConfigError, ConfigErrors
from appliance.paths import Paths


def load_all(
    paths: Paths, local: str | None = None
) -> tuple[HaConfig, AuthKeys, list[ResourceGroup], Extension]:
    """All errors of all three files at once, so the operator fixes them in one go."""
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
    if errors:
        raise ConfigErrors(errors)
    assert cfg is not None and keys is not None
    return cfg, keys, groups, ext
