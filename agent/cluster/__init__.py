"""A cluster node's cluster service (heartbeats to the quorum witness, takeover of groups)."""
