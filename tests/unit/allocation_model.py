"""When must plan() refuse? An account for the property tests, worked out from the inputs
with plain interval arithmetic rather than with the allocator's own code, so a regression
that refuses valid requests (or grants impossible ones) fails them."""

KUBELET_STEP = 65536  # the kubelet's block starts on a multiple of this, counted from 0


def _key(req, host):
    return (req.name, "fleet" if req.scope == "fleet" else "host:" + host)


def counted(req, mine):
    """The blocks of ``mine`` that count for a present request, or None when the owner is
    held: quarantined blocks come back only for ``reactivate``; beside an active block
    they stay quarantined and count for nothing."""
    if req.reactivate:
        return mine
    active = [b for b in mine if b.state == "active"]
    if len(active) < len(mine) and not active:
        return None
    return active


def _minus(span, holes):
    pieces = [span]
    for hole_start, hole_end in holes:
        pieces = [(s, e) for start, end in pieces
                  for s, e in ((start, min(end, hole_start)), (max(start, hole_end), end)) if e > s]
    return pieces


def expected_refusal(blocks, pool, requests, host):
    """None if ``plan(blocks, pool, requests, host, ...)`` must succeed, else a regex its
    AllocationError message must match."""
    held = {}
    for b in blocks:
        held.setdefault((b.owner, b.scope), []).append(b)
    for req in requests:  # request order: these refusals come before any allocation
        key = _key(req, host)
        mine = held.get(key, [])
        if req.state == "reclaimed" and any(b.state == "active" for b in mine):
            return r"owner %r \(%s\) still has active blocks" % (req.name, key[1])
        if req.state == "present" and req.name == "kubelet" and counted(req, mine) and \
                sum(b.count for b in counted(req, mine)) < req.count:
            return r"owner 'kubelet' \(%s\) already has" % key[1]

    # New blocks, first fit in the free IDs, aligned, owners in (name, scope) order.
    gone = {id(b) for req in requests if req.state == "reclaimed" for b in held.get(_key(req, host), [])}
    holes = [(0, pool.floor)] + [(r.start, r.end) for r in pool.reserved]
    holes += [(b.start, b.start + b.count) for b in blocks if id(b) not in gone]
    free = sorted([s, e, rng.start] for rng in pool.ranges for s, e in _minus((rng.start, rng.end), holes))
    wanted = sorted((_key(req, host), req.count - sum(b.count for b in counted(req, held.get(_key(req, host), []))))
                    for req in requests if req.state == "present" and counted(req, held.get(_key(req, host), [])) is not None)
    for key, need in wanted:
        if need <= 0:
            continue
        step = KUBELET_STEP if key[0] == "kubelet" else pool.block_size
        for i, (start, end, origin) in enumerate(free):
            base = 0 if key[0] == "kubelet" else origin
            candidate = start + (-(start - base)) % step
            if candidate + need <= end:
                free[i:i + 1] = [piece for piece in ([start, candidate, origin], [candidate + need, end, origin])
                                 if piece[1] > piece[0]]
                break
        else:
            return r"pool exhausted: cannot allocate %d IDs for owner %r \(scope %s\)" % (need, key[0], key[1])
    return None
