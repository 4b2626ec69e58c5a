# The owner's page (a stand-in): its real module, with the setup form, the live view and the
# login, comes from its own branch and replaces this one whole. The interface both keep:
# mount(server, dongle, hal, setup) registers the page's paths on an httpd.Server; in setup
# mode (portal.py) dongle is None and setup True.


def mount(server, dongle, hal, setup):
    def form(request):
        return 200, "text/html; charset=utf-8", SETUP_FORM

    server.route("/", form)


SETUP_FORM = (
    '<!DOCTYPE html><html><body><form method="post" action="/setup">'
    '<input name="ssid"><input name="password" type="password"><button>Save</button>'
    "</form></body></html>"
)
