"""Weight-sharing supernet: one training scores every network of a space (`nas.supernet.net`, `.train`)."""
