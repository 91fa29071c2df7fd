"""mkdocs hook: publish every package README as ``packages/<dist>.md``.

The package READMEs are the single source of each package's reference page, so
the site can never drift from what ships with the package.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    for readme in sorted(ROOT.glob("packages/*/README.md")):
        uri = f"packages/{readme.parent.name}.md"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=readme.read_text()))
    return files
