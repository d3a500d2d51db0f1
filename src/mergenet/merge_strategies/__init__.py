"""mergenet.merge_strategies"""
