"""mergenet.contracts"""
