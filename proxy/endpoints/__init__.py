"""The client wire formats the proxy serves, one module each: parse, render answers and errors."""
