# httpd.py alone on the unix port, with routes as a page module would register them: a GET
# that reads a header, a POST that takes a body, an async route. Listens on 127.0.0.1 at
# HTTPD_PORT and says "listening" once it does (host_tests/test_local_api.py).
import asyncio
import os

import httpd


def hello(request):
    return 200, httpd.TEXT, "hello %s" % (request.header("x-name") or "nobody")


def form(request):
    return 200, httpd.TEXT, b"got %d: " % len(request.body) + bytes(request.body)


async def later(request):
    await asyncio.sleep_ms(10)
    return 200, httpd.JSON, '{"query": "%s"}' % request.query


async def main():
    server = httpd.Server()
    server.route("/hello", hello)
    server.route("/form", form, "POST")
    server.route("/later", later)
    await server.start("127.0.0.1", int(os.getenv("HTTPD_PORT")))
    print("listening")
    while True:
        await asyncio.sleep(1)


asyncio.run(main())
