"""Stage and serve the dbt docs site: the catalogue, and nothing else from target/.

`dbt docs serve` serves the whole target folder, so anyone who can open the docs site
can also fetch compiled/ and run/ (every model's SQL as it ran), run_results.json and
the partial-parse cache. Those are build internals, not documentation. The site needs
three files (index.html, manifest.json, catalog.json) and the pages the overview links
to (slo_report.html, data-product/); ``stage_docs_site`` copies exactly those into a
clean folder, and ``serve`` serves that folder on the loopback interface only.

manifest.json does carry each model's compiled SQL (the docs site shows it). That is
safe now that the pseudonymisation key never enters SQL (retail_xsell.pseudonyms), and
staging checks it: a staged file holding the active key is an error, not a warning.

    python -m retail_xsell.docs_site --target target --out build/docs-site --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from retail_xsell import settings

#: What the dbt docs site loads, all required: `dbt docs generate` writes them.
SITE_FILES = ("index.html", "manifest.json", "catalog.json")
#: Pages the overview links to, copied when present.
LINKED_FILES = ("slo_report.html",)
LINKED_FOLDERS = ("data-product",)
#: Marks a folder as one this module staged, so re-staging may empty it.
MARKER = ".retail-xsell-docs-site"


class DocsSiteError(RuntimeError):
    """The docs site cannot be staged: missing files, a foreign folder, or a secret."""


def _secrets() -> list[bytes]:
    from retail_xsell.pseudonyms import PseudonymKeyError, load_key

    try:
        key = load_key()
    except PseudonymKeyError:
        return []
    return [] if key.is_development else [key.secret]


def _clean(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise DocsSiteError(
                f"{out} is not empty and was not staged here; choose another folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("Staged by retail_xsell.docs_site; emptied on every staging.\n")


def stage_docs_site(target_path: Path, out: Path, secrets: list[bytes] | None = None) -> list[Path]:
    """Copy what the docs site needs from ``target_path`` into a clean ``out`` folder.

    ``secrets`` (default: the pseudonymisation key, unless it is the public development
    key) must occur in no staged file; if one does, the folder is removed and
    DocsSiteError raised. Returns the staged files, relative to ``out``.
    """
    target_path, out = Path(target_path), Path(out)
    missing = [name for name in SITE_FILES if not (target_path / name).is_file()]
    if missing:
        raise DocsSiteError(
            f"{', '.join(missing)} missing in {target_path}: run `dbt docs generate` first"
        )
    _clean(out)
    for name in SITE_FILES + LINKED_FILES:
        if (target_path / name).is_file():
            shutil.copy2(target_path / name, out / name)
    for name in LINKED_FOLDERS:
        if (target_path / name).is_dir():
            shutil.copytree(target_path / name, out / name)
    staged = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != MARKER)
    secrets = _secrets() if secrets is None else [s for s in secrets if s]
    leaking = [path for path in staged if any(s in (out / path).read_bytes() for s in secrets)]
    if leaking:
        shutil.rmtree(out)
        raise DocsSiteError(
            "the pseudonymisation key occurs in "
            + ", ".join(str(path) for path in leaking)
            + "; nothing was staged (docs/security.md)"
        )
    return staged


class _Handler(SimpleHTTPRequestHandler):
    """Serves files only: no directory listings, nothing outside the folder."""

    def list_directory(self, path):  # http.server's signature
        self.send_error(404, "Not Found")
        return None


def make_server(out: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """An HTTP server for the staged folder (port 0 picks a free port)."""
    handler = functools.partial(_Handler, directory=str(Path(out).resolve()))
    return ThreadingHTTPServer((host, port), handler)


def serve(out: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the staged docs site until interrupted. Loopback by default: the site is
    for people on this machine; put a proper web server in front to share it."""
    with make_server(out, host, port) as server:
        address, bound = server.server_address[:2]
        if isinstance(address, bytes):
            address = address.decode()
        print(f"Serving the docs site from {out} on http://{address}:{bound} (Ctrl+C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", type=Path, default=settings.target_path(), help="dbt target folder"
    )
    parser.add_argument("--out", type=Path, default=settings.docs_site_dir())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-serve", action="store_true", help="stage only")
    args = parser.parse_args(argv)
    try:
        staged = stage_docs_site(args.target, args.out)
    except DocsSiteError as error:
        print(f"docs site: {error}", file=sys.stderr)
        return 1
    print(f"Staged {len(staged)} files into {args.out}")
    if not args.no_serve:
        serve(args.out, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
