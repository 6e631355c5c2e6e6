"""The Bayesian sorter (MODELS.md §1): snippets, the Gibbs sampler, per-group and workflow steps."""
