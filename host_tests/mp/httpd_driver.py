# httpd.py alone on the unix port, with routes as a page module would register them: a GET
# that reads a header, a POST that takes a body, an async route, one that holds its client
# 400 ms. Listens on 127.0.0.1 at HTTPD_PORT and says "listening" once it does
# (host_tests/test_local_api.py). HTTPD_ONE_BUFFER: the heap has no room for a second
# client's head buffer beside the server's kept one (as at 96K with the page).
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


async def hold(request):
    await asyncio.sleep_ms(400)
    return 200, httpd.TEXT, "held"


def no_room(n):
    if n == httpd.HEAD_MAX:
        raise MemoryError
    return bytearray(n)


async def main():
    server = httpd.Server()
    if os.getenv("HTTPD_ONE_BUFFER"):
        httpd.bytearray = no_room
    server.route("/hello", hello)
    server.route("/form", form, "POST")
    server.route("/later", later)
    server.route("/hold", hold)
    server.route("/counts", lambda request: (200, httpd.JSON, str(server.counts)))
    await server.start("127.0.0.1", int(os.getenv("HTTPD_PORT")))
    print("listening")
    while True:
        await asyncio.sleep(1)


asyncio.run(main())
