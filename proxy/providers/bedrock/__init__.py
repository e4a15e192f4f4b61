"""AWS Bedrock (`bedrock/`, `bedrock/converse/`): the Converse and ConverseStream APIs.

`converse` (the request), `answer` (the answer and the event stream), `errors` (what an error
means), `provider` (the adapter: URLs and SigV4 signing).
"""
