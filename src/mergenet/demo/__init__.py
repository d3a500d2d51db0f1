"""``mergenet demo``: the whole network on one machine, driven through the node client."""
