"""Result writing: records per model, markdown tables, grid/seed/biasing reports and their verdicts.

Built on ``espnet2_ext.scoring`` (the metrics); scoring never imports this package."""
