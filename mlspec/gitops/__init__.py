"""The GitOps loop: spec edits as reviewable git changes (version add, promote, rollback) and
the history of the spec files (which version was added and deployed when, by whom)."""
