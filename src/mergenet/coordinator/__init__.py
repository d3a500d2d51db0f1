"""mergenet.coordinator"""
