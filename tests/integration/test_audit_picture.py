"""The audit's picture as a browser shows it: headless Chromium renders subid-idspace.svg
for fleets of 10, 200 and 5,000 blocks. In the browser's own layout no label leaves the
picture or overlaps another, every block is drawn, and the blocks of owners with critical
findings are marked; in the screenshot the critical colour appears exactly when there are
critical findings. The screenshots are kept in .cache/audit-pictures/ to look at."""

import json
import xml.etree.ElementTree as ET
import re
import shutil
import subprocess

import pytest
from PIL import Image

from conftest import TOP
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import audit
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit_svg import COLOURS, render

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
KEPT = TOP / ".cache" / "audit-pictures"
POOL = parse_pool({"ranges": [{"start": 100000, "count": 2000000000}],
                   "reserved": [{"start": 200000000, "count": 100000000}]})
HOSTILE = "<b>mallory</b>&amp;"

# Runs in the page after the SVG is laid out: what a person would see go wrong.
PROBE = """
<script>
const svg = document.querySelector("svg");
const width = +svg.getAttribute("width"), height = +svg.getAttribute("height");
const boxes = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBBox()]);
const outside = boxes.filter(([s, b]) => b.x < 0 || b.y < 0 || b.x + b.width > width + 0.5 || b.y + b.height > height)
                     .map(([s]) => s);
const overlapping = [];
for (let i = 0; i < boxes.length; i++)
  for (let j = i + 1; j < boxes.length; j++) {
    const [a, p] = boxes[i], [b, q] = boxes[j];
    if (p.x < q.x + q.width - 0.5 && q.x < p.x + p.width - 0.5 && p.y < q.y + q.height - 0.5 && q.y < p.y + p.height - 0.5)
      overlapping.push([a, b]);
  }
const drawn = {};
for (const r of svg.querySelectorAll("rect")) {
  const t = r.querySelector("title");
  if (t && r.getBBox().width >= 1) drawn[t.textContent.split(" ")[0]] = (drawn[t.textContent.split(" ")[0]] || 0) + 1;
}
const marked = new Set([...svg.querySelectorAll("rect[stroke='%(critical)s'] > title")]
                       .map(t => t.textContent.split(" ")[0]));
document.getElementById("result").textContent = JSON.stringify(
  {outside, overlapping: overlapping.slice(0, 5), texts: boxes.length, strings: boxes.map(([s]) => s), drawn,
   marked: [...marked], width, height, elements: svg.querySelectorAll("*").length});
</script>
""" % {"critical": COLOURS["critical"]}


def host_info(rows):
    def lines(entries):
        return [{"owner": o, "start": s, "count": c, "line": i + 1} for i, (o, s, c) in enumerate(entries)]
    return {"subuid": lines(rows), "subgid": lines(rows), "findings": [],
            "files": {"subuid": "/etc/subuid", "subgid": "/etc/subgid"}}


def fleet(blocks_wanted, hosts, broken, host_name="node%03d.example.org"):
    """A ledger of ``blocks_wanted`` blocks (every 17th owner large), ``hosts`` hosts that
    match it, of which ``broken`` have a drifted line and a root:0:65536 line."""
    owners = [{"name": "big%04d" % i, "count": 4194304} if i % 17 == 0 else "u%04d" % i for i in range(blocks_wanted)]
    blocks = plan([], POOL, parse_owners(owners, POOL), "h1", "2026-12-07").blocks
    infos = {}
    for h in range(hosts):
        rows = [(b.owner, b.start, b.count) for b in blocks]
        if h < broken:
            rows[2] = (rows[2][0], 50000000, 65536)
            rows.append(("root", 0, 65536))
        infos[host_name % h] = {"info": host_info(rows), "owners": [b.owner for b in blocks]}
    return blocks, audit(blocks, POOL, infos)


def look(tmp_path, name, report, pool=POOL):
    assert CHROMIUM, "chromium-headless-shell is missing: scripts/setup installs it"
    svg = render(report, pool)
    width, height = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    page = tmp_path / ("%s.html" % name)
    page.write_text("<!DOCTYPE html><html><body style='margin:0'>%s<pre id='result'></pre>%s</body></html>"
                    % (svg, PROBE))
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=%d,%d" % (width, height)]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    probe = json.loads(re.search(r"<pre id=\"result\">(.*?)</pre>", dom.stdout, re.S).group(1)
                       .replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    (tmp_path / ("%s.svg" % name)).write_text(svg)
    shot = KEPT / ("%s.png" % name)
    KEPT.mkdir(parents=True, exist_ok=True)
    subprocess.run(base + ["--screenshot=%s" % shot, (tmp_path / ("%s.svg" % name)).as_uri()],
                   capture_output=True, timeout=120, check=True)
    return probe, Image.open(shot).convert("RGB")


def share_of(image, colour):
    """The share of the screenshot's pixels in ``colour`` (within 8 per channel)."""
    wanted = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    data = image.tobytes()  # RGB
    near = sum(1 for i in range(0, len(data), 3)
               if abs(data[i] - wanted[0]) <= 8 and abs(data[i + 1] - wanted[1]) <= 8 and abs(data[i + 2] - wanted[2]) <= 8)
    return near / (len(data) / 3.0)


@pytest.mark.parametrize("blocks_wanted, hosts, broken", [(10, 5, 3), (200, 40, 0), (5000, 20, 2)])
def test_the_picture_in_a_browser(tmp_path, blocks_wanted, hosts, broken):
    blocks, report = fleet(blocks_wanted, hosts, broken)
    probe, image = look(tmp_path, "idspace-%d" % blocks_wanted, report)
    print("audit picture, %d blocks: %dx%d px, %d texts, kept as %s"
          % (blocks_wanted, probe["width"], probe["height"], probe["texts"], KEPT / ("idspace-%d.png" % blocks_wanted)))
    assert image.size == (probe["width"], probe["height"])
    assert probe["outside"] == [], probe["outside"]
    assert probe["overlapping"] == [], probe["overlapping"]
    # Every block is drawn at least 1 px wide, with its owner in its tooltip.
    owners = {b.owner for b in blocks}
    missing = sorted(o for o in owners if not probe["drawn"].get(o.split(" ")[0]))
    assert missing == [], missing[:10]
    critical = report["summary"]["critical"]
    assert (critical > 0) == bool(broken)
    # The drifted owner's blocks carry the critical mark; nobody else's do.
    assert probe["marked"] == ([blocks[2].owner] if broken else []), probe["marked"]
    red = share_of(image, COLOURS["critical"])
    assert (red > 0.0005) == bool(broken), red
    assert share_of(image, COLOURS["active"]) > 0.05  # the allocated area is a real part of the picture
    if blocks_wanted <= 200:  # few enough to be named in the picture
        assert probe["texts"] > blocks_wanted


def test_a_hostile_host_name_is_text_in_the_page(tmp_path):
    blocks, report = fleet(10, 2, 1, host_name=HOSTILE + "%d")
    probe, image = look(tmp_path, "idspace-hostile", report)
    assert probe["elements"] == len(ET.fromstring(render(report, POOL)).findall(".//*"))  # no element injected
    assert any(text.startswith(HOSTILE + "0") for text in probe["strings"]), probe["strings"]


def test_the_readme_picture(tmp_path):
    """The fleet of the README's picture (docs/images/subid-idspace.png is a copy of the
    screenshot kept as .cache/audit-pictures/readme.png): 8 hosts, 26 owners, a kubelet
    block, a released owner still present on one host, a drifted line, a root line."""
    names = ["alice", {"name": "bob", "count": 4194304}] + [
        "carol", "dave", "erik", "frank", "gus", "hana", "ivan", "jo", "kim", "lena", "mo", "nina", "omar", "pia",
        {"name": "quinn", "count": 1048576}, "ravi", "sara", "tom", "uma", "vic", "wen", "xena", "yuri", "zoe"]
    pool = parse_pool({"ranges": [{"start": 100000, "count": 500000000}],
                       "reserved": [{"start": 200000000, "count": 100000000}]})
    blocks = plan([], pool, parse_owners(names, pool), "ws1", "2026-12-01").blocks
    blocks = plan(blocks, pool, parse_owners([{"name": "kubelet", "scope": "host", "count": 7208960}], pool),
                  "k8s-node1", "2026-12-02").blocks
    blocks = plan(blocks, pool, parse_owners([{"name": "dave", "state": "released"}], pool), "ws1",
                  "2026-12-03").blocks
    dave = next(b for b in blocks if b.owner == "dave")
    infos = {}
    for host in ("ws1", "ws2", "ci1", "ci2", "build1", "build2", "login1", "k8s-node1"):
        mine = [b for b in blocks if b.state == "active" and b.scope in ("fleet", "host:" + host)]
        rows = [(b.owner, 165536 if (host, b.owner) == ("ci2", "carol") else b.start, b.count) for b in mine]
        rows += [("root", 0, 65536)] if host == "build2" else [("dave", dave.start, dave.count)] if host == "login1" else []
        infos[host] = {"info": host_info(rows), "owners": [b.owner for b in mine]}
    report = audit(blocks, pool, infos)
    probe, image = look(tmp_path, "readme", report, pool)
    assert probe["outside"] == [] and probe["overlapping"] == []
    assert probe["marked"] == ["carol"]
    assert {"alice", "bob", "kubelet@k8s-node1", "dave", "ci2 2c", "build2 2w", "login1 2w"} <= set(probe["strings"])
