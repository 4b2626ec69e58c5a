"""The owner's page as the dongle serves it: webapp/ (npm: esbuild, uPlot) bundled and
minified into one HTML file, gzipped into build/page/page.html.gz.

`hanctl install` copies that file to the dongle's flash and `hanctl run` into its state
folder; firmware/page.py streams it as it is, with Content-Encoding: gzip. Built again only
when a source under webapp/ (or package-lock.json) changed; `npm ci` runs first when
webapp/node_modules is missing (the npm registry at build time, nothing at run time).
"""

import gzip
import hashlib
import shutil
import subprocess
from pathlib import Path

from . import runtime

ASSET = "page.html.gz"  # the name firmware/page_status.py opens
LIMIT = 60 * 1024  # the page's weight, gzipped (README, "The page")


class PageBuildError(RuntimeError):
    """node or npm missing, or the bundle failed: said for the owner."""


def page_dir():
    return runtime.repo_root() / "webapp"


def _sources():
    d = page_dir()
    return sorted([d / "build.mjs", d / "package.json", d / "package-lock.json",
                   *(d / "src").glob("*")])  # fmt: skip


def build(out_dir=None):
    """The path of page.html.gz, built if its sources changed."""
    out = Path(out_dir) if out_dir else runtime.repo_root() / "build" / "page"
    out.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    for path in _sources():
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    stamp = out / "built-from"
    asset = out / ASSET
    if asset.exists() and stamp.exists() and stamp.read_text() == h.hexdigest():
        return asset
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise PageBuildError("the page needs node and npm to build (apt-get install nodejs npm)")
    d = page_dir()
    try:
        if not (d / "node_modules" / "esbuild").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=d, check=True)
        html = out / "page.html"
        subprocess.run([node, "build.mjs", str(html)], cwd=d, check=True)
    except subprocess.CalledProcessError as err:
        raise PageBuildError(f"building the page failed: {err}") from None
    # mtime 0: the same sources give the same bytes, and install copies nothing new.
    data = gzip.compress(html.read_bytes(), 9, mtime=0)
    if len(data) > LIMIT:
        raise PageBuildError(f"the page is {len(data)} bytes gzipped, over {LIMIT}")
    tmp = asset.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(asset)
    stamp.write_text(h.hexdigest())
    return asset
