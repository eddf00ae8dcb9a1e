#!/usr/bin/env python3
"""SIP phones for ccr-sipgw's end-to-end tests and load runs (pjsua2).

One process, one UDP transport on 127.0.0.1, any number of agents' phones
(registered accounts) and callers (unregistered accounts, one per call).
Commands come one per line on stdin; what happens goes out as one JSON
object per line on stdout:

  agent USER MODE        register USER; MODE: answer (200 OK), busy (486),
                         never (rings until the caller side gives up)
  mode USER MODE         change how USER's phone answers (then {"ev": "mode"})
  unregister USER        USER's phone unregisters
  call TAG NUMBER [H=V]  caller TAG dials NUMBER with headers (X-Tier=gold)
  hangup TAG             caller TAG hangs up (CANCEL before the answer, BYE after)
  quit

Events: {"ev": "registered", "user", "code"}, {"ev": "ringing", "user",
"caller", "call_id"} (an agent's phone got a call from caller TAG),
{"ev": "caller", "tag", "state", "code", "call_id"} (a caller's call
changed state: EARLY, CONFIRMED, DISCONNECTED), {"ev": "ready"}.

With --load RATE --seconds N, it instead places RATE calls a second to
--number for N seconds, each hung up --hold seconds after it is answered,
and prints one line per answered call: {"ev": "setup", "call_id",
"invite": when the INVITE left, "answer": when the 200 OK came} (seconds
on the host's monotonic clock, which every process shares, so that an
agent's "ringing" "t" falls between them). With --serve N, it registers
--agents (answering) and runs N seconds.
"""

import argparse
import json
import os
import select
import sys
import time

import pjsua2 as pj


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class AgentCall(pj.Call):
    def __init__(self, account, call_id):
        super().__init__(account, call_id)
        self.account = account

    def onCallState(self, prm):
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            emit(ev="agent_call_ended", user=self.account.user, call_id=info.callIdString, code=info.lastStatusCode, reason=info.lastReason)
            self.account.calls.discard(self)


class Agent(pj.Account):
    def __init__(self, user, mode):
        super().__init__()
        self.user = user
        self.mode = mode
        self.calls = set()

    def onRegState(self, prm):
        emit(ev="registered", user=self.user, code=prm.code, expires=prm.expiration)

    def onIncomingCall(self, prm):
        call = AgentCall(self, prm.callId)
        self.calls.add(call)
        info = call.getInfo()
        caller = info.remoteUri.split("sip:caller-")[-1].split("@")[0]
        emit(ev="ringing", user=self.user, caller=caller, call_id=info.callIdString, t=time.monotonic())
        op = pj.CallOpParam()
        if self.mode == "answer":
            op.statusCode = 200
            call.answer(op)
        elif self.mode == "busy":
            op.statusCode = 486
            call.hangup(op)
        else:
            op.statusCode = 180
            call.answer(op)


class CallerCall(pj.Call):
    def __init__(self, account, tag, on_state=None, on_end=None):
        super().__init__(account)
        self.tag = tag
        self.on_state = on_state
        # Let go of the call object when its call ends: pjsua reuses call
        # ids, and a call object kept past its call acts on the call that
        # took its id later (a stale one hung up a new call).
        self.on_end = on_end
        self.started = time.monotonic()

    def onCallState(self, prm):
        info = self.getInfo()
        name = {
            pj.PJSIP_INV_STATE_EARLY: "EARLY",
            pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
            pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
        }.get(info.state)
        if name is None:
            return
        if self.on_state is not None:
            self.on_state(self, name, info)
        else:
            emit(ev="caller", tag=self.tag, state=name, code=info.lastStatusCode, reason=info.lastReason, call_id=info.callIdString)
        if name == "DISCONNECTED" and self.on_end is not None:
            self.on_end()


class Phones:
    def __init__(self, registrar):
        self.registrar = registrar
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        config = pj.EpConfig()
        config.logConfig.level = 0
        config.logConfig.consoleLevel = 0
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        # The wheel's pjsua takes at most 4 calls at once a process.
        config.uaConfig.maxCalls = 4
        config.medConfig.noVad = True
        self.ep.libInit(config)
        self.ep.audDevManager().setNullDev()
        transport = pj.TransportConfig()
        transport.port = 0
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.ep.libStart()
        self.agents = {}
        self.callers = {}

    def account_config(self, user, register):
        config = pj.AccountConfig()
        config.idUri = f"sip:{user}@127.0.0.1"
        if register:
            config.regConfig.registrarUri = f"sip:{self.registrar}"
            config.regConfig.timeoutSec = 300
        config.sipConfig.proxies.append(f"sip:{self.registrar};lr")
        return config

    def agent(self, user, mode):
        account = Agent(user, mode)
        account.create(self.account_config(user, True))
        self.agents[user] = account

    def caller_account(self, name):
        account = pj.Account()
        account.create(self.account_config(f"caller-{name}", False))
        return account

    def call(self, tag, number, headers, on_state=None, account=None):
        """Caller TAG's call; its own account (pjsua has 8 at most) unless given one."""
        if account is None:
            account = self.caller_account(tag)
        call = CallerCall(account, tag, on_state, lambda: self.callers.pop(tag, None))
        op = pj.CallOpParam(True)
        for header in headers:
            name, value = header.split("=", 1)
            h = pj.SipHeader()
            h.hName = name
            h.hValue = value
            op.txOption.headers.append(h)
        call.started = time.monotonic()
        call.makeCall(f"sip:{number}@{self.registrar}", op)
        self.callers[tag] = (account, call)
        return call

    def hangup(self, tag):
        entry = self.callers.get(tag)
        if entry is not None:
            entry[1].hangup(pj.CallOpParam())

    def poll(self, ms):
        self.ep.libHandleEvents(ms)


def interactive(phones):
    emit(ev="ready")
    buffered = b""
    while True:
        phones.poll(10)
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if not readable:
            continue
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            return
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "quit":
                return
            if words[0] == "agent":
                phones.agent(words[1], words[2])
            elif words[0] == "unregister":
                phones.agents[words[1]].setRegistration(False)
            elif words[0] == "mode":
                phones.agents[words[1]].mode = words[2]
                emit(ev="mode", user=words[1], mode=words[2])
            elif words[0] == "call":
                phones.call(words[1], words[2], words[3:])
            elif words[0] == "hangup":
                phones.hangup(words[1])
            else:
                emit(ev="error", line=line.decode())


def load(phones, rate, seconds, number, hold):
    """Places rate calls a second; prints each one's setup time."""
    hangups = []
    pending = {}

    def on_state(call, state, info):
        if state == "CONFIRMED":
            emit(ev="setup", call_id=info.callIdString, invite=call.started, answer=time.monotonic())
            hangups.append((time.monotonic() + hold, call))
        elif state == "DISCONNECTED":
            pending.pop(call.tag, None)
            if info.lastStatusCode >= 300:
                emit(ev="failed", tag=call.tag, code=info.lastStatusCode)

    # One account for every call (pjsua2 has at most 8 accounts and 4 calls
    # a process: several processes place the calls of a fast run).
    account = phones.caller_account(f"load-{os.getpid()}")
    start = time.monotonic()
    placed = 0
    while time.monotonic() - start < seconds or pending:
        now = time.monotonic()
        while placed < rate * min(now - start, seconds) and now - start < seconds:
            tag = f"{os.getpid()}-{placed}"
            placed += 1
            try:
                pending[tag] = phones.call(tag, number, [], on_state, account)
            except pj.Error:
                emit(ev="failed", tag=tag, code="local: pjsua's 4 calls at once")
        for due, call in [h for h in hangups if h[0] <= now]:
            hangups.remove((due, call))
            call.hangup(pj.CallOpParam())
        if now - start > seconds + 60:
            break
        phones.poll(5)
    emit(ev="done", placed=placed)
    hangups.clear()
    pending.clear()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registrar", required=True, help="Kamailio's SIP address, HOST:PORT")
    parser.add_argument("--load", type=float, help="calls a second to place (a load run)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the load run places calls")
    parser.add_argument("--number", default="1000", help="the number the load run dials")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds a load-run call lasts once answered")
    parser.add_argument("--agents", default="", help="agents' phones to register first, comma-separated (answer)")
    parser.add_argument("--serve", type=float, help="only run the --agents' phones, for this many seconds")
    args = parser.parse_args()
    phones = Phones(args.registrar)
    for user in filter(None, args.agents.split(",")):
        phones.agent(user, "answer")
    try:
        if args.serve:
            emit(ev="ready")
            deadline = time.monotonic() + args.serve
            while time.monotonic() < deadline:
                phones.poll(10)
        elif args.load:
            emit(ev="ready")
            load(phones, args.load, args.seconds, args.number, args.hold)
        else:
            interactive(phones)
    finally:
        # Calls hung up and let go before the library goes (a call object
        # outliving it aborts the process).
        phones.ep.hangupAllCalls()
        phones.poll(100)
        phones.callers.clear()
        phones.agents.clear()
        import gc
        gc.collect()
        phones.ep.libDestroy()


if __name__ == "__main__":
    main()
