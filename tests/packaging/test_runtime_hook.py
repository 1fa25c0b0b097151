"""packaging/runtime_hook_env.py: what children of the frozen program see."""

from __future__ import annotations

import runtime_hook_env as hook


def test_restores_saved_original():
    env = {"LD_LIBRARY_PATH": "/opt/b/_internal:/custom", "LD_LIBRARY_PATH_ORIG": "/custom",
           "_PYI_ARCHIVE_FILE": "/opt/b/heartbeat", "_PYI_PARENT_PROCESS_LEVEL": "1",
           "_PYI_APPLICATION_HOME_DIR": "/opt/b/_internal", "PATH": "/usr/bin"}
    out = hook._restore_environment(env, bundle_dir="/opt/b/_internal")
    assert out == {"LD_LIBRARY_PATH": "/custom", "PATH": "/usr/bin"}


def test_removes_variable_the_bootloader_made_up(tmp_path):
    b = tmp_path / "_internal"
    b.mkdir()
    env = {"LD_LIBRARY_PATH": str(b), "HOME": "/root"}
    assert hook._restore_environment(env, bundle_dir=str(b)) == {"HOME": "/root"}


def test_keeps_foreign_entries_without_orig(tmp_path):
    b = tmp_path / "_internal"
    b.mkdir()
    env = {"LD_LIBRARY_PATH": f"{b}:/usr/local/lib"}
    assert hook._restore_environment(env, bundle_dir=str(b)) == {"LD_LIBRARY_PATH": "/usr/local/lib"}


def test_empty_original_is_restored_empty():
    env = {"LD_LIBRARY_PATH": "/x/_internal:", "LD_LIBRARY_PATH_ORIG": ""}
    assert hook._restore_environment(env, bundle_dir="/x/_internal") == {"LD_LIBRARY_PATH": ""}


def test_untouched_when_not_frozen():
    env = {"PATH": "/bin"}
    assert hook._restore_environment(env, bundle_dir=None) == {"PATH": "/bin"}
