"""Rewrite docs/configuration.md's environment table from iris_assets/settings.py (a test checks they agree).

.venv/bin/python scripts/settings_table.py            # rewrite the table in docs/configuration.md
.venv/bin/python scripts/settings_table.py --print    # only print it, for pasting
"""

import re
import sys
from pathlib import Path

from iris_assets import settings

if "--print" in sys.argv[1:]:
    print(settings.markdown_table())
    sys.exit(0)
page = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
text = page.read_text()
table = re.compile(r"\| variable \| meaning \| default \|\n\|---\|---\|---\|\n(?:\|.*\|\n)+")
if not table.search(text):
    sys.exit(f"{page} has no environment table")
page.write_text(table.sub(lambda _: settings.markdown_table() + "\n", text, count=1))
