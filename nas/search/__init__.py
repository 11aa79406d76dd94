"""The search: the space, the study and its workers, the proxy, the journal, Pareto fronts and statistics."""
