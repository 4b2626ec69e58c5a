# The owner's page's live stream: GET /page/stream, the newest value of each field as
# /page/live gives it, one server-sent event (text/event-stream, `data: <JSON>` and a blank
# line) after each reading, for as long as the session lasts.
#
# Loaded for a stream and dropped when it ends (page._rare): its code is held only while a
# client watches. One stream at a time (Page.watcher, the Live below); a second is refused
# 503 (page._rare, before this module loads again), and that client polls /page/live
# instead. A stream holds neither a client slot nor a buffer of httpd's: each event is
# written into the server's kept buffer while no request has it, so a reading's event
# costs what /page/live's answer does, and the page's requests are served beside it.
# It ends when:
#   the session ends         logged out, or session_s without a request   (closed)
#   the client does not read an event untaken SEND_MS                     (counted `slow`)
#   the client left          it closed its end (seen within a tick), a write failed
#                            (`gone` then), or a comment sent after 15 s without an
#                            event was not taken (a peer gone without a word)
#   the heap is short        a route's answer found no room, or a reading did
#                            (Page.make_room; not a second client's buffer)
#   no buffer for an event   a request held the server's buffer 2 s (a client sending
#                            its head slowly): the page polls, and tries again later
#   an event too large       for 4 KB (a meter of very many fields)
# Memory first because at 96K with one destination a running stream's ~1.6 KB (its
# coroutine, streams, socket and this code) were what a settings save lacked
# (docs/performance.md).

import asyncio

from httpd import SEND_MS, _within, refusal
from reading import write


def watch(page, request):
    s = page._session(request)
    if s is None:
        return refusal(401, "log in")
    live = Live(page, s)
    out = (200, "text/event-stream", live)
    page.watcher = live  # last: a MemoryError before it leaves no claim behind
    return out


class Live:
    """The stream's body for httpd: stream() sends, close() frees the one stream's place.
    session: the session it serves, None once asked to end (Page.make_room)."""

    def __init__(self, page, session):
        self.page = page
        self.session = session

    async def stream(self, writer, server):
        """An event after each reading until the stream ends (above). An event waits while a
        request has the server's buffer (a tick, 100 ms, at a time); it is used only between
        two awaits."""
        page = self.page
        seen = 0
        waited = quiet = 0  # ticks an event has waited for the buffer; since the last write
        while self.session is not None and self.session[0] >= page.dongle.uptime.seconds():
            # The client closed (a browser's tab gone): b"" at its end, None while it
            # sends nothing (an EventSource sends nothing after its request).
            if writer.s.read(1) == b"":
                return
            buf = server._kept
            if page.readings != seen and buf is None:
                waited += 1
                if waited > 20:
                    return
            elif page.readings != seen:
                seen = page.readings
                waited = quiet = 0
                try:
                    mv = _event(page.values, buf)
                except OverflowError:  # a meter of many fields: as /page/live does
                    try:
                        mv = _event(page.values, bytearray(4096))
                    except OverflowError:
                        return
                # No await between the event's making and write(), which copies what the
                # socket does not take at once (asyncio's Stream.out_buf): the buffer is
                # free again when it returns, and a slow client holds only its own copy.
                writer.write(mv)
                await _within(writer.drain(), SEND_MS)
            else:
                quiet += 1
                if quiet >= 150:  # 15 s without a reading: a comment line, 3 B
                    quiet = 0
                    writer.write(b":\n\n")
                    await _within(writer.drain(), SEND_MS)
            await asyncio.sleep_ms(100)  # a reading comes every 1-10 s

    def close(self):
        if self.page.watcher is self:
            self.page.watcher = None


def _event(values, buf):
    """values as one server-sent event in buf: a memoryview of it; OverflowError when it
    does not fit."""
    buf[:6] = b"data: "
    n = write(values, buf, 6)
    if n + 2 > len(buf):
        raise OverflowError()
    buf[n : n + 2] = b"\n\n"
    return memoryview(buf)[: n + 2]
