# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet audit: every host's files against the ledger, as JSON, Markdown and an SVG
map of the ID space. Pure logic: it takes what subid_info returned per host."""

from __future__ import annotations

import collections

from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import PRESENT_STATES
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import FLEET, HOST_PREFIX
from ansible_collections.fleetid.subid.plugins.module_utils.directory import ids_in_ranges, owner_name
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange, merge, subtract

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _finding(host, severity, kind, message, owner=None, file=None, line=None):
    return {"host": host, "severity": severity, "kind": kind, "owner": owner, "file": file, "line": line,
            "message": message}


def expected_ranges(blocks, host):
    """owner -> sorted [(start, count)] the ledger gives ``host`` (active blocks)."""
    wanted = collections.defaultdict(list)
    for b in blocks:
        if b.state == "active" and (b.scope == FLEET or b.scope == HOST_PREFIX + host):
            wanted[b.owner].append((b.start, b.count))
    return {owner: sorted(ranges) for owner, ranges in wanted.items()}


def read_by_shadow(entries):
    """The entries shadow reads: not those it skips (a CR line ending, a NIS ``+``/``-`` line)."""
    return [e for e in entries or [] if not e.get("ignored")]


def host_ranges(entries):
    found = collections.defaultdict(list)
    for e in read_by_shadow(entries):
        found[e["owner"]].append((int(e["start"]), int(e["count"])))
    return {owner: sorted(ranges) for owner, ranges in found.items()}


_ENTRY_FIELDS = (("owner", str), ("start", int), ("count", int))
_FINDING_FIELDS = (("severity", str), ("kind", str), ("message", str))
# Fields that may be null (a finding about no line, a system-wide one).
_OPTIONAL_FIELDS = {"subuid": (("line", int),), "subgid": (("line", int),),
                    "findings": (("owner", str), ("file", str), ("line", int))}


def host_info_problem(info):
    """What makes a subid_info result unreadable, or None. The result comes from the host,
    and a host may be hostile: the audit trusts no field of it before this check."""
    if not isinstance(info, dict):
        return "the result is a %s, not a mapping" % type(info).__name__
    for key, fields in (("subuid", _ENTRY_FIELDS), ("subgid", _ENTRY_FIELDS), ("findings", _FINDING_FIELDS)):
        items = info.get(key, [])
        if not isinstance(items, list):
            return "%s is a %s, not a list" % (key, type(items).__name__)
        for number, item in enumerate(items):
            if not isinstance(item, dict):
                return "%s[%d] is not a mapping" % (key, number)
            for field, kind in fields:
                # bool is an int to Python, never a count
                if not isinstance(item.get(field), kind) or isinstance(item.get(field), bool):
                    return "%s[%d].%s is not a %s" % (key, number, field, "number" if kind is int else "string")
            for field, kind in _OPTIONAL_FIELDS[key]:
                value = item.get(field)
                if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                    return "%s[%d].%s is not a %s" % (key, number, field, "number" if kind is int else "string")
            if key == "findings" and item["severity"] not in SEVERITY_ORDER:
                return "findings[%d].severity is not critical, warning or info" % number
    files = info.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(files.get(k, ""), str) for k in ("subuid", "subgid")):
        return "files is not a mapping of paths"
    return None


def owners_info_problem(resolved):
    """What makes an owners_info result unreadable, or None; like host_info_problem, for
    the owners and groups a host resolved (a hostile host may send anything)."""
    if not isinstance(resolved, dict):
        return "the result is a %s, not a mapping" % type(resolved).__name__
    owners = resolved.get("owners")
    if not isinstance(owners, list):
        return "owners is not a list"
    for number, owner in enumerate(owners):
        if not isinstance(owner, str) and not (
                isinstance(owner, dict) and isinstance(owner.get("name"), str)
                and isinstance(owner.get("state") or "present", str)):
            return "owners[%d] is neither a name nor a mapping with a name" % number
    groups = resolved.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups):
        return "groups is not a list of mappings with a name"
    added = resolved.get("added") or {}
    if not isinstance(added, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in added.items()):
        return "added is not a mapping of names to groups"
    state = resolved.get("host_state") or {}
    ids = state.get("resolved_ids") or [] if isinstance(state, dict) else None
    if not isinstance(ids, list):
        return "host_state.resolved_ids is not a list"
    for number, item in enumerate(ids):
        if not (isinstance(item, dict) and item.get("kind") in ("uid", "gid") and isinstance(item.get("id"), int)
                and not isinstance(item.get("id"), bool) and isinstance(item.get("name"), str)):
            return "host_state.resolved_ids[%d] is not a {kind, id, name} of a UID or GID" % number
    podman = state.get("podman_state") or {}
    if not isinstance(podman, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(e, str) for e in v) for k, v in podman.items()):
        return "host_state.podman_state is not a mapping of names to lists of text"
    return None


def audit(blocks, pool, hosts):
    """The report: ``hosts`` maps host -> {"info": subid_info result, "owners": [names]}.

    Findings per host: drift from the ledger, entries the ledger does not know
    (unmanaged), released owners still present, entries that collide with another
    owner's ledger block, plus what subid_info found on the host itself.
    """
    findings = []
    owners_in_ledger = {b.owner for b in blocks}
    quarantined = {b.owner for b in blocks if b.state == "quarantined"} - {
        b.owner for b in blocks if b.state == "active"}
    for host in sorted(hosts):
        info = hosts[host].get("info") or {}
        if isinstance(info, dict) and (info.get("failed") or "subuid" not in info):
            findings.append(_finding(host, "critical", "unreachable",
                                     "no subid_info from %s: %s" % (host, info.get("msg", "host not audited"))))
            continue
        problem = host_info_problem(info)
        if problem:
            findings.append(_finding(host, "critical", "bad_host_result",
                                     "the subid_info result from %s cannot be read (%s): the host was not audited"
                                     % (host, problem)))
            continue
        if hosts[host].get("resolved_problem"):
            findings.append(_finding(host, "critical", "bad_host_result",
                                     "the owners_info result from %s cannot be read (%s): its owners and groups were "
                                     "not compared, only the owners in the inventory" % (
                                         host, hosts[host]["resolved_problem"])))
        for f in info.get("findings", []):
            findings.append(_finding(host, f["severity"], f["kind"], f["message"], owner=f.get("owner"),
                                     file=f.get("file"), line=f.get("line")))
        wanted = expected_ranges(blocks, host)
        listed = set(hosts[host].get("owners") or [])
        storage = ((hosts[host].get("resolved") or {}).get("host_state") or {}).get("podman_state") or {}
        paths = info.get("files") or {}
        for kind in ("subuid", "subgid"):
            path = paths.get(kind) or "/etc/" + kind
            have = host_ranges(info.get(kind, []))
            lines = {e["owner"]: e.get("line") for e in info.get(kind, [])}
            for owner, ranges in sorted(have.items()):
                where = "%s line %s" % (path, lines.get(owner))
                if owner in wanted and ranges != wanted[owner] and storage.get(owner):
                    findings.append(_finding(
                        host, "critical", "drift",
                        "%s: %s has %s but the ledger says %s, and has Podman state here (%s), whose files a move "
                        "would strand: site.yml holds it; move it with subid_move and reset its storage, or adopt "
                        "the range" % (where, owner, _text(ranges), _text(wanted[owner]), "; ".join(storage[owner])),
                        owner, path, lines.get(owner)))
                elif owner in wanted and ranges != wanted[owner]:
                    findings.append(_finding(
                        host, "critical", "drift",
                        "%s: %s has %s but the ledger says %s; run site.yml to apply the ledger"
                        % (where, owner, _text(ranges), _text(wanted[owner])), owner, path, lines.get(owner)))
                elif owner in quarantined:
                    findings.append(_finding(
                        host, "warning", "released_present",
                        "%s: %s was released (its blocks are quarantined) but still has %s here"
                        % (where, owner, _text(ranges)), owner, path, lines.get(owner)))
                elif owner in owners_in_ledger and owner not in wanted:
                    findings.append(_finding(
                        host, "warning", "not_for_this_host",
                        "%s: %s has %s, but the ledger gives it no block for %s"
                        % (where, owner, _text(ranges), host), owner, path, lines.get(owner)))
                elif owner not in owners_in_ledger:
                    clash = [b for b in blocks for s, c in ranges if b.range.overlaps(IdRange(s, c))]
                    if clash:
                        findings.append(_finding(
                            host, "critical", "ledger_conflict",
                            "%s: %s has %s, which overlaps the ledger's block of %s (%s)"
                            % (where, owner, _text(ranges), clash[0].owner, clash[0].range),
                            owner, path, lines.get(owner)))
                    else:
                        findings.append(_finding(
                            host, "warning", "unmanaged",
                            "%s: %s has %s, which the ledger does not record (adopt it or remove it)"
                            % (where, owner, _text(ranges)), owner, path, lines.get(owner)))
            for owner in sorted(listed & set(wanted) - set(have)):
                findings.append(_finding(
                    host, "critical", "missing",
                    "%s should have %s in %s (ledger) but has no line" % (owner, _text(wanted[owner]), path),
                    owner, path))
        if hosts[host].get("resolved"):
            findings.extend(directory_findings(host, blocks, wanted, info, hosts[host]["resolved"]))
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9), f["host"], f["kind"], f["owner"] or ""))
    return {
        "summary": summarize(blocks, pool, findings, sorted(hosts)),
        "hosts": sorted(hosts),
        "findings": findings,
        "blocks": [dict(owner=b.owner, scope=b.scope, start=b.start, count=b.count, state=b.state) for b in blocks],
    }


def directory_findings(host, blocks, wanted, info, resolved):
    """Findings about owners resolved on the host (the owners_info result): group members
    without a block, owners with a line and a block that nobody requests any more (with
    owner groups: a member who left), and ranges over IDs the host resolved by name, which
    subid_info's host-ID check cannot see when the directory does not enumerate."""
    found = []
    requested = {owner_name(o) for o in resolved.get("owners") or []
                 if isinstance(o, str) or (o.get("state") or "present") in PRESENT_STATES}
    groups = [g["name"] for g in resolved.get("groups") or []]
    for member, group in sorted((resolved.get("added") or {}).items()):
        if member not in wanted:
            found.append(_finding(
                host, "warning", "member_without_block",
                "%s is a member of %s, so an owner on %s, but has no block in the ledger for it: run site.yml"
                % (member, group, host), member))
    paths = {kind: (info.get("files") or {}).get(kind) or "/etc/" + kind for kind in ("subuid", "subgid")}
    entries = read_by_shadow(info.get("subuid"))
    if groups:
        for entry in entries:
            owner = entry["owner"]
            if owner in wanted and owner not in requested:
                found.append(_finding(
                    host, "warning", "unrequested",
                    "%s line %s: %s has %s and an active block in the ledger, but %s no longer requests "
                    "it (not in subid_owners, not a member of %s): if they left, release it with offboard.yml"
                    % (paths["subuid"], entry.get("line"), owner, _text(wanted[owner]), host, ", ".join(groups)),
                    owner, paths["subuid"], entry.get("line")))
                requested.add(owner)  # once per owner
    seen = {(f.get("file"), f.get("line")) for f in info.get("findings", []) if f.get("kind") == "host_id_collision"}
    ids = (resolved.get("host_state") or {}).get("resolved_ids") or []
    for kind, id_kind in (("subuid", "uid"), ("subgid", "gid")):
        mine = [i for i in ids if i["kind"] == id_kind]
        for entry in read_by_shadow(info.get(kind)):
            rng = IdRange(int(entry["start"]), int(entry["count"]))
            for hit, dummy in ids_in_ranges(mine, [rng]):
                if (paths[kind], entry.get("line")) in seen:
                    continue
                found.append(_finding(
                    host, "critical", "resolved_id_in_range",
                    "%s line %s: %s's range %s contains %s %d of %s, which %s resolves by name"
                    % (paths[kind], entry.get("line"), entry["owner"], rng, id_kind.upper(), hit["id"], hit["name"],
                       host),
                    entry["owner"], paths[kind], entry.get("line")))
    for block in blocks:
        if block.state != "active" or block.owner not in wanted:
            continue
        if block.scope != FLEET and block.scope != HOST_PREFIX + host:
            continue
        for hit, dummy in ids_in_ranges(ids, [block.range]):
            found.append(_finding(
                host, "critical", "resolved_id_in_range",
                "the ledger's block %s of %s contains %s %d of %s, which %s resolves by name: reserve the "
                "directory's ID ranges in the pool and move this owner with reclaim and a new block"
                % (block.range, block.owner, hit["kind"].upper(), hit["id"], hit["name"], host), block.owner))
    return found


def summarize(blocks, pool, findings, hosts):
    pool_ids = sum(r.count for r in pool.ranges)
    taken = merge((b.start, b.end) for b in blocks)
    free = subtract(subtract([(r.start, r.end) for r in pool.ranges], merge(pool.withheld())), taken)
    return {
        "hosts": len(hosts),
        "blocks": len(blocks),
        "active_blocks": sum(1 for b in blocks if b.state == "active"),
        "quarantined_blocks": sum(1 for b in blocks if b.state == "quarantined"),
        "owners": len({b.owner for b in blocks}),
        "pool_ids": pool_ids,
        "allocated_ids": sum(b.count for b in blocks if b.state == "active"),
        "quarantined_ids": sum(b.count for b in blocks if b.state == "quarantined"),
        "free_ids": sum(e - s for s, e in free),
        "largest_free_run": max((e - s for s, e in free), default=0),
        "critical": sum(1 for f in findings if f["severity"] == "critical"),
        "warning": sum(1 for f in findings if f["severity"] == "warning"),
        "info": sum(1 for f in findings if f["severity"] == "info"),
    }


def grouped_findings(findings):
    """The findings as rows a person reads: those of one severity on the same line of the
    same file of a host are one row (a root:0:65536 line maps root, holds root's own ID
    and the host's accounts: one row, all the kinds), in the findings' order."""
    rows, by_line = [], {}
    for f in findings:
        key = (f["severity"], f["host"], f.get("file"), f.get("line")) if f.get("line") else None
        if key in by_line:
            row = by_line[key]
            if f["kind"] not in row["kinds"]:
                row["kinds"].append(f["kind"])
            if f["message"] not in row["messages"]:
                row["messages"].append(f["message"])
            row["owner"] = row["owner"] or f.get("owner")
            continue
        row = dict(f, kinds=[f["kind"]], messages=[f["message"]])
        rows.append(row)
        if key:
            by_line[key] = row
    return rows


def console_lines(report, reports=()):
    """The audit as a person reads it on the console: the counts, one line per finding
    (host, file:line, owner, kinds, messages; findings on one line together) and where
    the reports are."""
    s = report["summary"]
    lines = ["%d critical, %d warning, %d info on %d hosts; %d blocks in the ledger, %d IDs free"
             % (s["critical"], s["warning"], s["info"], s["hosts"], s["blocks"], s["free_ids"])]
    for f in grouped_findings(report["findings"]):
        where = ("%s:%s" % (f["file"], f["line"]) if f.get("line") else f["file"]) if f.get("file") else "-"
        lines.append(" ".join(_one_line(field) for field in (
            f["severity"].upper(), f["host"], where, f["owner"] or "-", ", ".join(f["kinds"]) + ":",
            "; ".join(f["messages"]))))
    if reports:
        lines.append("reports: " + ", ".join(reports))
    return lines


def _one_line(text, keep=""):
    """``text`` with each control character but those in ``keep`` as a space: a hostile owner
    name must not start a line of its own, on the console or in a report."""
    return "".join(" " if (char < " " or char == "\x7f") and char not in keep else char for char in str(text))


def _text(ranges):
    return ", ".join("%d+%d" % pair for pair in ranges) or "nothing"


def to_markdown(report):
    s = report["summary"]
    out = [
        "# Subordinate ID audit",
        "",
        "%d hosts, %d owners, %d blocks (%d active, %d quarantined)."
        % (s["hosts"], s["owners"], s["blocks"], s["active_blocks"], s["quarantined_blocks"]),
        "Pool: %d IDs; %d allocated, %d quarantined, %d free (largest free run %d)."
        % (s["pool_ids"], s["allocated_ids"], s["quarantined_ids"], s["free_ids"], s["largest_free_run"]),
        "",
        "**%d critical, %d warning.**" % (s["critical"], s["warning"]),
        "",
    ]
    if report["findings"]:
        out += ["| severity | host | kind | owner | file:line | finding |", "|---|---|---|---|---|---|"]
        for f in grouped_findings(report["findings"]):
            where = "%s:%s" % (f["file"], f["line"]) if f.get("file") and f.get("line") else f.get("file") or ""
            out.append("| %s |" % " | ".join(_md(field) for field in (
                f["severity"], f["host"], ", ".join(f["kinds"]), f["owner"] or "", where, "; ".join(f["messages"]))))
    else:
        out.append("No findings: every host matches the ledger.")
    out += ["", "## Ledger", "", "| owner | scope | range | IDs | state |", "|---|---|---|---|---|"]
    for b in report["blocks"]:
        out.append("| %s | %s | %d-%d | %d | %s |" % (
            _md(b["owner"]), _md(b["scope"]), b["start"], b["start"] + b["count"] - 1, b["count"], b["state"]))
    return "\n".join(out) + "\n"


# Markdown and the HTML it may carry: every character that could open a tag, an entity, a
# link, emphasis, code or a table cell. Text from a host (owner names, messages) may be hostile.
_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "|": "\\|"}
_MD_BACKSLASHED = set("\\`*_[](){}#!~")


def _md(text):
    """``text`` as inert Markdown for one table cell: one line, no markup."""
    out = []
    for char in _one_line(text):  # a newline would end the table row
        if char in _MD_ESCAPES:
            out.append(_MD_ESCAPES[char])
        elif char in _MD_BACKSLASHED:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)
