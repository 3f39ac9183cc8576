"""Loopback stand-ins for the AWS operations moto lacks, each following AWS's contract."""
