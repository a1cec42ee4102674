"""The sections of the run report (ensemble.report assembles them into one page): one module per
section, each a function of the run's data that returns (anchor, title, html)."""
