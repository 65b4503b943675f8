# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's picture (subid-idspace.svg): the findings first, then the pool with its
reserved windows, then the allocated area zoomed so that each block is visible and, when
there is room, named, and last each host by its worst finding.

The zoomed area is one axis wrapped into rows. Long free runs between blocks are cut out
and drawn as breaks, so that a block at 100,000 and one at 2,000,000,000 both show. The
number of rows grows with the number of blocks (a label needs about 40 px), up to
MAX_ROWS. Every text that comes from a host or the inventory is escaped."""

from __future__ import annotations

import bisect
import math

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import _one_line

WIDTH = 1000
LEFT = 16
LABELS = 96  # the column of each row's first ID
ROW_WIDTH = WIDTH - LEFT - LABELS - 16
ROW_HEIGHT, ROW_GAP = 26, 10
BREAK_PX = 14
MAX_BREAKS = 40
MAX_ROWS = 48
CHAR_PX = 6.6  # a generous average width of a character at font-size 11
CHIP_WIDTH, CHIP_HEIGHT, CHIPS_PER_ROW, MAX_CHIPS = 184, 22, 5, 60
# systemd-nspawn -U and systemd-nsresourced pick container IDs here.
SYSTEMD_WINDOW = IdRange(524288, 1879048192 - 524288)

COLOURS = {"active": "#2b7bb9", "quarantined": "#8d6e63", "reserved": "#9e9e9e", "free": "#eef3ee",
           "systemd": "#7e57c2", "critical": "#c62828", "warning": "#e69500", "info": "#1e88e5", "clean": "#43a047",
           "text": "#212121", "muted": "#616161"}
SEVERITIES = ("critical", "warning", "info")


def render(report, pool):
    """The SVG document of ``report`` (as audit.audit returns it) for ``pool``."""
    canvas = _Canvas()
    canvas.y = 30
    _header(canvas, report)
    _overview(canvas, report, pool)
    _zoom(canvas, report, pool)
    _hosts(canvas, report)
    _legend(canvas)
    return canvas.document()


class _Canvas:
    def __init__(self):
        self.parts = []
        self.y = 0

    def add(self, text):
        self.parts.append(text)

    def text(self, x, y, text, size=11, anchor="start", weight="normal", fill=COLOURS["text"], title=None):
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s" fill="%s">%s%s</text>'
                 % (x, y, size, anchor, weight, fill, _escape(text),
                    "<title>%s</title>" % _escape(title) if title else ""))

    def rect(self, x, y, w, h, fill, title=None, stroke=None, extra=""):
        self.add('<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"%s%s>%s</rect>'
                 % (x, y, max(w, 1.0), h, fill,
                    ' stroke="%s" stroke-width="2"' % stroke if stroke else "", extra,
                    "<title>%s</title>" % _escape(title) if title else ""))

    def heading(self, text):
        self.y += 26
        self.text(LEFT, self.y, text, size=13, weight="bold")
        self.y += 10

    def document(self):
        height = int(self.y + 16)
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
                'font-family="DejaVu Sans, Verdana, sans-serif">'
                '<title>Subordinate ID space</title>'
                '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
                'patternTransform="rotate(45)"><rect width="6" height="6" fill="#d6d6d6"/>'
                '<line x1="0" y1="0" x2="0" y2="6" stroke="%s" stroke-width="2"/></pattern></defs>'
                '<rect width="100%%" height="100%%" fill="#ffffff"/>%s</svg>\n'
                % (WIDTH, height, WIDTH, height, COLOURS["reserved"], "".join(self.parts)))


def _header(canvas, report):
    s = report["summary"]
    canvas.text(LEFT, canvas.y, "Subordinate ID space", size=18, weight="bold")
    share = 100.0 * s["allocated_ids"] / s["pool_ids"] if s["pool_ids"] else 0.0
    canvas.y += 22
    canvas.text(LEFT, canvas.y, "%d hosts, %d owners, %d active and %d quarantined blocks; %.1f%% of the pool's %s IDs "
                "allocated, %s free (largest free run %s)" % (
                    s["hosts"], s["owners"], s["active_blocks"], s["quarantined_blocks"], share,
                    _n(s["pool_ids"]), _n(s["free_ids"]), _n(s["largest_free_run"])), size=12, fill=COLOURS["muted"])
    canvas.y += 12
    x = LEFT
    if not any(s[severity] for severity in SEVERITIES):
        _pill(canvas, x, "no findings: every host matches the ledger", COLOURS["clean"])
    for severity in SEVERITIES:
        if s[severity]:
            x = _pill(canvas, x, "%d %s" % (s[severity], severity), COLOURS[severity]) + 8
    canvas.y += 26


def _pill(canvas, x, label, colour):
    width = len(label) * 7.4 + 20
    canvas.add('<rect x="%.1f" y="%.1f" width="%.1f" height="22" rx="11" fill="%s"/>' % (x, canvas.y, width, colour))
    canvas.text(x + width / 2, canvas.y + 15.5, label, size=12, anchor="middle", weight="bold", fill="#ffffff")
    return x + width


def _overview(canvas, report, pool):
    canvas.heading("The pool")
    bars = list(pool.ranges)
    outside = [IdRange(b["start"], b["count"]) for b in report["blocks"]
               if not any(r.start <= b["start"] and b["start"] + b["count"] <= r.end for r in pool.ranges)]
    if outside:
        low = min(r.start for r in outside)
        bars.append(IdRange(low, max(r.end for r in outside) - low))
    width = WIDTH - 2 * LEFT
    for i, rng in enumerate(bars):
        y = canvas.y
        scale = float(width) / rng.count

        def x_of(some_id, rng=rng, scale=scale):
            return LEFT + (max(rng.start, min(some_id, rng.end)) - rng.start) * scale

        canvas.rect(LEFT, y, width, 16, COLOURS["free"])
        for res in pool.reserved:
            if res.overlaps(rng):
                canvas.rect(x_of(res.start), y, x_of(res.end) - x_of(res.start), 16, "url(#hatch)",
                            title="reserved %s" % (res,))
        if SYSTEMD_WINDOW.overlaps(rng):
            canvas.rect(x_of(SYSTEMD_WINDOW.start), y + 12, x_of(SYSTEMD_WINDOW.end) - x_of(SYSTEMD_WINDOW.start), 4,
                        COLOURS["systemd"], title="systemd container IDs %s (systemd-nspawn -U, nsresourced)"
                        % (SYSTEMD_WINDOW,))
        for b in report["blocks"]:
            block = IdRange(b["start"], b["count"])
            if block.overlaps(rng):
                canvas.rect(x_of(block.start), y, x_of(block.end) - x_of(block.start), 12, COLOURS[b["state"]])
        label = "pool range" if i < len(pool.ranges) else "blocks outside the pool"
        canvas.text(LEFT, y + 30, "%s %s" % (label, _n(rng.start)), size=10, fill=COLOURS["muted"])
        canvas.text(WIDTH - LEFT, y + 30, _n(rng.last), size=10, anchor="end", fill=COLOURS["muted"])
        canvas.y += 42
    windows = ["reserved %s-%s" % (_n(r.start), _n(r.last)) for r in pool.reserved]
    if any(SYSTEMD_WINDOW.overlaps(r) for r in bars):
        windows.append("systemd container IDs %s-%s (purple)" % (_n(SYSTEMD_WINDOW.start), _n(SYSTEMD_WINDOW.last)))
    if windows:
        canvas.text(LEFT, canvas.y, "Withheld from allocation: " + "; ".join(windows[:6])
                    + ("; and %d more" % (len(windows) - 6) if len(windows) > 6 else ""), size=11)
        canvas.y += 4


class _Axis:
    """The zoomed axis, wrapped into rows of ROW_WIDTH px: the blocks and the free runs
    between them in ID order, each as wide as ``_units`` of its size (a block 64 times the
    smallest is 7 times as wide, so large blocks do not crowd out the rest), and the
    longest free runs cut out as breaks of BREAK_PX. Within a segment IDs are linear."""

    def __init__(self, blocks):
        spans, end = [], None
        for start, stop in sorted((b["start"], b["start"] + b["count"]) for b in blocks):
            start = max(start, end) if end is not None else start  # a damaged ledger may overlap
            if stop > start:
                spans.append((start, stop))
                end = stop
        smallest = float(min(stop - start for start, stop in spans))
        gaps = sorted(((spans[i + 1][0] - spans[i][1], i) for i in range(len(spans) - 1)), reverse=True)
        cut = {i for gap, i in gaps[:MAX_BREAKS] if gap > 8 * smallest}
        pieces = []  # (first ID, end ID, kind) with kind "ids" or "break"
        for i, (start, stop) in enumerate(spans):
            pieces.append((start, stop, "ids"))
            if i + 1 < len(spans) and spans[i + 1][0] > stop:
                pieces.append((stop, spans[i + 1][0], "break" if i in cut else "ids"))
        units = sum(_units((stop - start) / smallest) for start, stop, kind in pieces if kind == "ids")
        breaks = sum(1 for piece in pieces if piece[2] == "break")
        # px for the smallest block: room for a name when there are few, at least 3 px for 5,000.
        want = 64 if len(spans) <= 60 else 40 if len(spans) <= 400 else 3
        self.rows = max(1, min(MAX_ROWS, int(math.ceil((units * want + breaks * BREAK_PX) / ROW_WIDTH))))
        per_unit = (self.rows * ROW_WIDTH - breaks * BREAK_PX) / units
        self.segments, at = [], 0.0  # (first ID, end ID, first px, end px, kind)
        for start, stop, kind in pieces:
            width = BREAK_PX if kind == "break" else _units((stop - start) / smallest) * per_unit
            self.segments.append((start, stop, at, at + width, kind))
            at += width
        self.id_starts = [seg[0] for seg in self.segments]
        self.px_starts = [seg[2] for seg in self.segments]

    def position(self, some_id):
        start, stop, p1, p2, kind = self.segments[max(0, bisect.bisect_right(self.id_starts, some_id) - 1)]
        return p1 + (min(max(some_id, start), stop) - start) * (p2 - p1) / (stop - start)

    def id_at(self, position):
        """The ID drawn at ``position`` (inside a break: the first ID after it)."""
        i = max(0, bisect.bisect_right(self.px_starts, position) - 1)
        start, stop, p1, p2, kind = self.segments[i]
        if kind == "break":
            return stop
        return min(stop - 1, start + int((position - p1) * (stop - start) / (p2 - p1)))

    def breaks(self):
        return [seg for seg in self.segments if seg[4] == "break"]

    def pieces(self, p1, p2):
        """(row, x, width) of the span p1..p2, cut at row ends."""
        out = []
        while p2 - p1 > 1e-6:
            row = min(int(p1 // ROW_WIDTH), self.rows - 1)
            end = min(p2, (row + 1) * ROW_WIDTH)
            if end <= p1:  # rounding at the very end of the last row
                break
            out.append((row, p1 - row * ROW_WIDTH, end - p1))
            p1 = end
        return out


def _units(ratio):
    """The width of a segment ``ratio`` times the smallest block: linear up to it, then
    one more unit for each doubling."""
    return ratio if ratio <= 1 else 1 + math.log(ratio, 2)


def _zoom(canvas, report, pool):
    blocks = report["blocks"]
    if not blocks:
        canvas.heading("Blocks")
        canvas.text(LEFT, canvas.y + 8, "No blocks in the ledger yet.", size=12)
        canvas.y += 12
        return
    axis = _Axis(blocks)
    first, last = min(b["start"] for b in blocks), max(b["start"] + b["count"] for b in blocks) - 1
    canvas.heading("The blocks in ID order, IDs %s-%s" % (_n(first), _n(last)))
    canvas.text(LEFT, canvas.y + 6, "A block's width grows with its size, one step per doubling%s; each row starts at the "
                "ID on its left. Point at a block for its exact range." % (
                    ", and long free runs are cut out" if axis.breaks() else ""), size=11, fill=COLOURS["muted"])
    canvas.y += 16
    top = canvas.y
    x0 = LEFT + LABELS

    def row_y(row):
        return top + row * (ROW_HEIGHT + ROW_GAP)

    for row in range(axis.rows):
        canvas.rect(x0, row_y(row), ROW_WIDTH, ROW_HEIGHT, COLOURS["free"])
        canvas.text(x0 - 6, row_y(row) + 17, _n(axis.id_at(row * ROW_WIDTH)), size=10, anchor="end",
                    fill=COLOURS["muted"])
    for start, stop, p1, p2, kind in axis.breaks():
        cut = IdRange(start, stop - start)
        withheld = ["reserved %s" % (r,) for r in pool.reserved if r.overlaps(cut)]
        if SYSTEMD_WINDOW.overlaps(cut):
            withheld.append("systemd container IDs")
        about = "%s IDs without blocks, not drawn: %s-%s%s" % (
            _n(cut.count), _n(cut.start), _n(cut.last), " (holds %s)" % ", ".join(withheld) if withheld else "")
        for row, x, width in axis.pieces(p1, p2):
            y = row_y(row)
            canvas.add('<g><title>%s</title><rect x="%.2f" y="%.2f" width="%.2f" height="%d" fill="#ffffff"/>'
                       '<path d="M%.2f %.2f l4 %.2f l-4 %.2f M%.2f %.2f l4 %.2f l-4 %.2f" stroke="%s" fill="none"/></g>'
                       % (_escape(about),
                          x0 + x, y - 2, width, ROW_HEIGHT + 4,
                          x0 + x + 3, y - 2, (ROW_HEIGHT + 4) / 2.0, (ROW_HEIGHT + 4) / 2.0,
                          x0 + x + 8, y - 2, (ROW_HEIGHT + 4) / 2.0, (ROW_HEIGHT + 4) / 2.0, COLOURS["muted"]))
    worst = _worst_by_owner(report["findings"])
    for b in sorted(blocks, key=lambda b: b["start"]):
        block = IdRange(b["start"], b["count"])
        title = "%s (%s) %s %s" % (b["owner"], b["scope"], block, b["state"])
        severity = worst.get(b["owner"])
        if severity:
            title += "; %s findings for %s" % (severity, b["owner"])
        for row, x, width in axis.pieces(axis.position(block.start), axis.position(block.end)):
            y = row_y(row)
            canvas.rect(x0 + x, y, width, ROW_HEIGHT, COLOURS[b["state"]], title=title,
                        stroke=COLOURS[severity] if severity in ("critical", "warning") else None,
                        extra=' stroke="#ffffff" stroke-width="0.5"' if not severity and width > 3 else "")
            label = b["owner"] if b["scope"] == "fleet" else "%s@%s" % (b["owner"], b["scope"].split(":", 1)[-1])
            if width >= len(label) * CHAR_PX + 8:
                canvas.text(x0 + x + width / 2, y + 17, label, size=11, anchor="middle", fill="#ffffff")
    canvas.y = row_y(axis.rows) - ROW_GAP + 4


def _worst_by_owner(findings):
    worst = {}
    for f in findings:
        owner, severity = f.get("owner"), f.get("severity")
        if owner and severity in SEVERITIES:
            if owner not in worst or SEVERITIES.index(severity) < SEVERITIES.index(worst[owner]):
                worst[owner] = severity
    return worst


def _hosts(canvas, report):
    counts = {}
    for f in report["findings"]:
        counts.setdefault(f["host"], {severity: 0 for severity in SEVERITIES})
        if f["severity"] in SEVERITIES:
            counts[f["host"]][f["severity"]] += 1
    hosts = sorted(set(report.get("hosts") or []) | set(counts), key=lambda h: (
        tuple(-counts.get(h, {}).get(s, 0) for s in SEVERITIES), h))
    with_critical = sum(1 for h in hosts if counts.get(h, {}).get("critical"))
    with_warning = sum(1 for h in hosts if counts.get(h, {}).get("warning") and not counts[h]["critical"])
    canvas.heading("The hosts: %d with critical findings, %d with warnings, %d without either"
                   % (with_critical, with_warning, len(hosts) - with_critical - with_warning))
    shown = hosts[:MAX_CHIPS]
    for i, host in enumerate(shown):
        row, col = divmod(i, CHIPS_PER_ROW)
        x, y = LEFT + col * (CHIP_WIDTH + 8), canvas.y + row * (CHIP_HEIGHT + 6)
        tally = counts.get(host, {})
        severity = next((s for s in SEVERITIES if tally.get(s)), None)
        colour = COLOURS[severity] if severity else COLOURS["clean"]
        marks = " ".join("%d%s" % (tally[s], s[0]) for s in SEVERITIES if tally.get(s))
        room = int((CHIP_WIDTH - 12 - len(marks) * CHAR_PX) / CHAR_PX)
        name = host if len(host) <= room else host[:max(room - 1, 1)] + "\u2026"
        canvas.add('<rect x="%.1f" y="%.1f" width="%d" height="%d" rx="4" fill="%s"><title>%s</title></rect>'
                   % (x, y, CHIP_WIDTH, CHIP_HEIGHT, colour, _escape("%s: %s" % (
                       host, ", ".join("%d %s" % (tally[s], s) for s in SEVERITIES if tally.get(s)) or "no findings"))))
        canvas.text(x + 6, y + 15, ("%s %s" % (name, marks)).strip(), size=11, fill="#ffffff")
    rows = int(math.ceil(len(shown) / float(CHIPS_PER_ROW)))
    canvas.y += rows * (CHIP_HEIGHT + 6)
    if len(hosts) > len(shown):
        canvas.y += 12
        canvas.text(LEFT, canvas.y, "and %d more hosts (see subid-audit.md)" % (len(hosts) - len(shown)), size=11)


def _legend(canvas):
    canvas.y += 20
    x = LEFT
    for name, colour in (("active block", COLOURS["active"]), ("quarantined block", COLOURS["quarantined"]),
                         ("reserved", "url(#hatch)"), ("free", COLOURS["free"]), ("systemd window", COLOURS["systemd"]),
                         ("critical finding", COLOURS["critical"]), ("warning", COLOURS["warning"])):
        stroke = name in ("critical finding", "warning")
        canvas.add('<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"%s/>' % (
            x, canvas.y - 11, COLOURS["active"] if stroke else colour,
            ' stroke="%s" stroke-width="2"' % colour if stroke else ' stroke="#9e9e9e" stroke-width="0.5"'))
        canvas.text(x + 19, canvas.y, name, size=11)
        x += 19 + len(name) * CHAR_PX + 18


def _n(number):
    return "{:,}".format(number)


def _escape(text):
    text = _one_line(text, keep="\t\n")  # XML 1.0 allows no other control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
