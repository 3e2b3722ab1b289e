"""Local SSM sandbox: EC2-like instance containers and stand-ins for the AWS endpoints.

TEST INFRASTRUCTURE. Everything here stands in for AWS so that the real
``amazon.aws.aws_ssm`` connection plugin can be exercised without AWS.
"""
