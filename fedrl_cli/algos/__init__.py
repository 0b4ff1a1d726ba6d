"""Federated algorithms: one module each, stating how an agent updates locally and what it shares."""
