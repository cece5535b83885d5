"""relation_heads"""
