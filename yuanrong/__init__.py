"""yuanrong: openYuanrong's programming model on Ray, for the edge-cloud continuum."""
