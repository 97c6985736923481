"""A/B relevance experiments: the UBI schema the sidecar logs searches and clicks in."""
