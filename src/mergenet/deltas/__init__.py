"""mergenet.deltas"""
