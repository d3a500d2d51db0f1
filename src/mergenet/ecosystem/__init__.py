"""mergenet.ecosystem"""
