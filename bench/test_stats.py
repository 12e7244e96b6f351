"""Tests of bench/stats.py (pure); `make test` runs them with `python3 -m unittest`."""

import math
import unittest

import stats


class PercentileTest(unittest.TestCase):
    def check(self, samples, q, expected):
        self.assertAlmostEqual(stats.percentile(samples, q), expected, places=9)

    def test_interpolates_between_closest_ranks(self):
        for samples, q, expected in [
            ([10, 20, 30, 40], 50, 25.0),
            ([10, 20, 30, 40], 99, 39.7),
            ([10, 20, 30, 40], 0, 10.0),
            ([10, 20, 30, 40], 100, 40.0),
            ([5], 99, 5.0),
            ([3, 1, 2], 50, 2.0),
            (list(range(1, 101)), 99, 99.01),
        ]:
            with self.subTest(samples=samples, q=q):
                self.check(samples, q, expected)

    def test_refuses_no_samples_and_out_of_range_q(self):
        with self.assertRaises(ValueError):
            stats.percentile([], 50)
        with self.assertRaises(ValueError):
            stats.percentile([1], 101)


class SummaryTest(unittest.TestCase):
    def test_reports_p50_and_p99_from_thirty_samples(self):
        got = stats.summary([float(n) for n in range(1, 31)])
        self.assertEqual(got, {"n": 30, "p50": 15.5, "p99": 29.71})

    def test_withholds_percentiles_below_the_minimum(self):
        got = stats.summary([1.0, 2.0])
        self.assertEqual((got["n"], got["p50"], got["p99"]), (2, None, None))
        self.assertIn("fewer than 30", got["note"])


class HistogramTest(unittest.TestCase):
    def check(self, q, buckets, expected):
        got = stats.histogram_quantile(q, buckets)
        if expected is None:
            self.assertIsNone(got)
        else:
            self.assertAlmostEqual(got, expected, places=9)

    def test_interpolates_inside_the_bucket_like_prometheus(self):
        buckets = [(0.001, 10), (0.005, 30), (math.inf, 30)]
        for q, expected in [(0.5, 0.002), (0.25, 0.00075), (0.1, 0.0003), (1.0, 0.005)]:
            with self.subTest(q=q):
                self.check(q, buckets, expected)

    def test_a_quantile_in_the_inf_bucket_is_the_largest_finite_bound(self):
        self.check(0.99, [(0.001, 10), (0.005, 20), (math.inf, 30)], 0.005)

    def test_no_observations_is_none(self):
        self.check(0.5, [(0.001, 0), (math.inf, 0)], None)
        self.check(0.5, [], None)

    def test_reads_buckets_from_an_exposition_and_sums_label_sets(self):
        text = "\n".join([
            "# TYPE slipway_autoscaler_tick_seconds histogram",
            'slipway_autoscaler_tick_seconds_bucket{le="0.001"} 4',
            'slipway_autoscaler_tick_seconds_bucket{le="0.005"} 9',
            'slipway_autoscaler_tick_seconds_bucket{le="+Inf"} 10',
            "slipway_autoscaler_tick_seconds_sum 0.02",
            "slipway_autoscaler_tick_seconds_count 10",
            'other_seconds_bucket{le="0.001"} 99',
            'traefik_service_request_duration_seconds_bucket{service="a@slipway",le="0.1"} 3',
            'traefik_service_request_duration_seconds_bucket{service="b@slipway",le="0.1"} 4',
            'traefik_service_request_duration_seconds_bucket{service="a@slipway",le="+Inf"} 3',
            'traefik_service_request_duration_seconds_bucket{service="b@slipway",le="+Inf"} 5',
        ])
        self.assertEqual(stats.histogram_from_exposition(text, "slipway_autoscaler_tick_seconds"),
                         [(0.001, 4.0), (0.005, 9.0), (math.inf, 10.0)])
        self.assertEqual(stats.histogram_from_exposition(text, "traefik_service_request_duration_seconds"),
                         [(0.1, 7.0), (math.inf, 8.0)])
        self.assertIsNone(stats.histogram_from_exposition(text, "slipway_missing_seconds"))


WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:18000/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us   9.00ms   90.00%
    Req/Sec    19.50k     1.20k   22.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    2.01s
  388123 requests in 10.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  38812.30
Transfer/sec:      6.00MB
"""


class WrkTest(unittest.TestCase):
    def test_reads_rate_percentiles_and_errors(self):
        got = stats.parse_wrk(WRK_OUTPUT)
        self.assertEqual(got["requests_per_sec"], 38812.3)
        self.assertEqual(got["requests"], 388123)
        self.assertEqual(got["errors"], 7)
        self.assertEqual(got["latency_ms"], {"p50": 0.75, "p75": 0.9, "p90": 1.1, "p99": 2010.0})

    def test_durations_in_every_unit(self):
        for text, expected in [("812.00us", 0.812), ("1.5ms", 1.5), ("2s", 2000.0), ("1m", 60000.0)]:
            with self.subTest(text=text):
                self.assertAlmostEqual(stats.wrk_time_ms(text), expected)

    def test_output_without_a_rate_is_refused(self):
        with self.assertRaises(ValueError):
            stats.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


class TableTest(unittest.TestCase):
    def test_formats_figures_and_aligns_a_pipe_table(self):
        rows = [["wake p50", stats.fmt(12.3456, "ms"), stats.verdict(12.3, 20)],
                ["tick", stats.fmt(None, "ms"), stats.verdict(None, 5)],
                ["ratio", stats.fmt(0.93), stats.verdict(0.93, 0.9, higher_is_better=True)],
                ["rss", stats.fmt(151.0, "MB"), stats.verdict(151.0, 150)]]
        self.assertEqual(stats.table(["figure", "value", "target"], rows), "\n".join([
            "| figure   | value   | target       |",
            "|----------|---------|--------------|",
            "| wake p50 | 12.3 ms | met          |",
            "| tick     | n/a     | not measured |",
            "| ratio    | 0.93    | met          |",
            "| rss      | 151 MB  | missed       |",
        ]))


if __name__ == "__main__":
    unittest.main()
