"""What runs beside the flows: the GitHub webhook receiver and the metrics exporter."""
