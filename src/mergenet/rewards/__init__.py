"""mergenet.rewards"""
