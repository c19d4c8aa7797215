"""Real workloads that run side by side on yuanrong: AI inference, big-data ETL, microservices."""
