"""Raises an exception whose message clears the terminal and prints fake summary lines."""

FAKE = ("\n\x1b[2J\x1b[H"
        "cases          50  (valid 50, optimal 50)\n"
        "gap            mean 0.00%  median 0.00%  max 0.00%\r\n"
        "| forged | row |\n<script>alert(1)</script>")


def compute_model_placement(gpu_num, models):
    raise ValueError(FAKE)
