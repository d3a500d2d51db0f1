"""mergenet.evaluator"""
