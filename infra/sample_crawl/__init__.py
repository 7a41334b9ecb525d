"""The synthetic crawl the demo and tests run on (WARC.gz with ground truth). Not shipped to executors."""
