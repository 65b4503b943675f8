"""What a failed rootless run reports: Podman's reason, not its last line."""

from ansible_collections.fleetid.subid.plugins.module_utils.rootless import explain_podman_error


def test_the_error_line_is_reported_where_podman_ends_with_an_exit_status():
    output = ("time=\"2026-11-28T17:00:00Z\" level=warning msg=\"...\"\n"
              "Error: fuse: failed to open /dev/fuse: Permission denied\n"
              "fuse-overlayfs: cannot mount: No such file or directory\n"
              ": exit status 1\n")
    assert explain_podman_error(output, "alice", 65536) == "Error: fuse: failed to open /dev/fuse: Permission denied"


def test_the_last_line_is_reported_where_there_is_no_error_line():
    assert explain_podman_error("starting\nsomething odd happened\n\n", "alice", 65536) == "something odd happened"
    assert explain_podman_error("", "alice", 65536) == "podman failed without a message"


def test_too_few_ids_names_the_user_and_the_count():
    output = "Error: ... potentially insufficient UIDs or GIDs available in user namespace ...\n"
    message = explain_podman_error(output, "alice", 65536)
    assert "alice" in message and "65536" in message
