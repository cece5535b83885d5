"""one_stage"""
