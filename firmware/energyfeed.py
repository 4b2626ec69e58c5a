# The dongle's feed of the energy counted on between registers (energynow.py): each reading
# to the count, a register held while a discovery round runs, the module loaded again after
# each round. Apart from dongle.py so that a dongle that counts nothing holds none of it:
# with the capacity tariff's account (the count was ruled out beside it then) this code in
# the resident dongle module left discovery rounds short of memory at the first List 3 (96K,
# beside two busy loops: 16 of 18 runs of test_tariff_dongle.py's Home Assistant test had
# their configs late, 2 failed; 0 of 20 without it). Loaded at boot where the dongle marks
# a destination for the count, and kept: it holds the count's state, which energynow.py
# (dropped during each round) does not.

# [None], [a register held while a discovery round runs], then energynow.start()'s state
# (its last item the readings not counted: an int)
state = [None]


def feed(destinations, reading, log):
    """Take one reading (dongle.py, each one); never raises. destinations: the dongle's."""
    global state
    s = state
    if s[-1] is None and "active_energy_import" not in reading:
        return  # nothing to count from yet: the first register starts it
    from destination import _announcing

    # A discovery round drops energynow, for its room: a register waits for the round's end
    # (energynow.py's _HELD). The first one waits for rounds still to come too (the fields
    # it brings): loaded just before such a round, two destinations over TLS with
    # discovery ran out of memory in it at 96K.
    if _announcing is not None or (
        len(s) == 1 and any(d._discover and d.client and d.client.connected for d in destinations)
    ):  # (a destination whose broker is down has its round only once it is back)
        if "active_energy_import" in reading:
            s[-2 if len(s) > 1 else 0] = reading
        return
    try:
        import energynow  # and again after each round: destination.py

        if len(s) == 1:  # the first register: from it on (and one held before)
            held = s[0]
            s = state = energynow.start(destinations)
            s[-2] = held
        energynow.offer(s, reading)
    except MemoryError:  # not loaded (again) yet: the power before is held over it
        if len(s) > 1:
            if not s[-1]:
                log("energynow: no memory, a reading not counted")
            s[-1] += 1  # readings not counted
        elif "active_energy_import" in reading:
            s[0] = reading  # the register to start from, when there is room (not a
            # List 1 or 2 over one held: the count would wait for the next List 3)
