"""mergenet.node"""
