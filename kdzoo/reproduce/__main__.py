"""``python -m kdzoo.reproduce RESULTS.json``: prints the Markdown table of a results file."""

from kdzoo.reproduce.report import main

raise SystemExit(main())
