"""The variables the collection reads, found in its roles and playbooks, and the names an
inventory sets that nothing reads (plugin_utils.known_vars)."""

from ansible_collections.fleetid.subid.plugins.plugin_utils.known_vars import known_names, unknown_names

KNOWN = known_names()


def test_the_playbooks_and_every_roles_variables_are_known():
    assert {"subid_owners", "subid_owner_groups", "subid_pool", "subid_ledger", "subid_adopt", "subid_hosts",
            "subid_offboard", "subid_report_dir", "subid_known_vars", "subids_owners", "subids_applied",
            "login_defs_policy", "uidmap_install", "rootless_podman_test_images", "rootless_podman_proof",
            "rootless_podman_report"} <= KNOWN
    # Internal variables (double underscore) are not among them.
    assert not any(name.startswith("__") for name in KNOWN)


def test_typos_get_the_nearest_known_name():
    found = unknown_names(["subid_owner", "rootless_podman_test_imge", "subid_owners", "ansible_host",
                           "login_defs_polcy", "subid_zzzzzzzz_qqqq", 7], KNOWN)
    assert found == {"subid_owner": "subid_owners", "rootless_podman_test_imge": "rootless_podman_test_image",
                     "login_defs_polcy": "login_defs_policy", "subid_zzzzzzzz_qqqq": None}


def test_a_name_in_a_comment_of_a_role_counts_as_read(tmp_path):
    (tmp_path / "roles" / "r" / "defaults").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "defaults" / "main.yml").write_text(
        "# see subid_extra\nsubids_x: \"{{ subid_owners | default([]) }}\"\n__subids_internal: 1\n")
    (tmp_path / "playbooks").mkdir()
    assert known_names(str(tmp_path)) == {"subid_extra", "subids_x", "subid_owners"}
