"""Scenario tables for the synthetic DialogSum-style demo set.

Each scenario is a small function registered with :func:`scenario`. It receives a
:class:`Ctx` (speakers, vocabulary pickers, a private ``random.Random``) and returns
``(turns, summary)``: ``turns`` alternate ``#Person1#`` / ``#Person2#`` starting with
Person1, and ``summary`` is a one-or-two-sentence third-person summary in a fixed style
per scenario. Every fact and every name used in a summary is stated in the dialogue.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# ---------------------------------------------------------------------------- vocabulary
_FEMALE = [
    "Maria",
    "Aisha",
    "Yuki",
    "Priya",
    "Fatima",
    "Chloe",
    "Ingrid",
    "Mei",
    "Amara",
    "Sofia",
    "Leila",
    "Hannah",
    "Olga",
    "Camila",
    "Zainab",
    "Keiko",
    "Nadia",
    "Elif",
    "Chiara",
    "Ayesha",
    "Laura",
    "Thandiwe",
    "Freya",
    "Lucia",
    "Mariam",
    "Svetlana",
    "Emma",
    "Nia",
    "Rosa",
    "Divya",
    "Haruka",
    "Zoë",
    "Anaïs",
]
_MALE = [
    "Tom",
    "Ahmed",
    "Kenji",
    "Rahul",
    "Carlos",
    "Lars",
    "Kwame",
    "Dmitri",
    "Luca",
    "Omar",
    "Jamal",
    "Wei",
    "Mateo",
    "Hiroshi",
    "Arjun",
    "Tariq",
    "Sven",
    "Pierre",
    "Diego",
    "Kofi",
    "Ivan",
    "Samuel",
    "Hassan",
    "Javier",
    "Minh",
    "Emeka",
    "Ravi",
    "Felix",
    "Daniel",
    "Oskar",
    "Chen",
    "José",
    "Björn",
]
FIRST_NAMES: tuple[str, ...] = tuple(_FEMALE + _MALE)

SURNAMES = [
    "Patel",
    "Kim",
    "Novak",
    "Okafor",
    "Silva",
    "Schmidt",
    "Tanaka",
    "Haddad",
    "Kowalski",
    "Mensah",
    "Rossi",
    "Nguyen",
    "Larsen",
    "Moreau",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
NUM = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
]
CITIES = [
    "Lisbon",
    "Berlin",
    "Nairobi",
    "Osaka",
    "Toronto",
    "Madrid",
    "Istanbul",
    "Seoul",
    "Lyon",
    "Krakow",
    "Dublin",
    "Accra",
    "Oslo",
    "Lima",
]
STREETS = (
    "Oak Street",
    "Harbour Road",
    "Elm Avenue",
    "Station Road",
    "Mill Lane",
    "Park Street",
    "Queen's Road",
    "Cedar Close",
    "River Walk",
    "Market Square",
    "Hill Street",
    "Victoria Avenue",
)
RESTAURANTS = (
    "Bella Napoli",
    "The Blue Door",
    "Sakura Garden",
    "Casa Verde",
    "Golden Dragon",
    "The Olive Tree",
    "Spice Route",
    "Le Petit Bistro",
    "The Green Fork",
    "Taverna Mykonos",
)
COMPANIES = (
    "Brightline Logistics",
    "Nordwind Energy",
    "Peak Software",
    "Harbor Health",
    "Lumen Media",
    "Greenfield Foods",
    "Atlas Engineering",
    "Blue Sky Travel",
)
HOTELS = ("the Grand Central Hotel", "the Seaview Inn", "the Park Plaza", "the Riverside Hotel", "the Old Mill Lodge")


@dataclass(frozen=True)
class Person:
    name: str
    he: str
    him: str
    his: str

    def __str__(self) -> str:
        return self.name


def person(name: str) -> Person:
    return Person(name, "she", "her", "her") if name in _FEMALE else Person(name, "he", "him", "his")


def a(noun: str) -> str:
    """``a``/``an`` + noun."""
    return ("an " if noun[0].lower() in "aeiou" or noun.startswith("SUV") else "a ") + noun


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def money(x: float) -> str:
    return f"${x:,.2f}" if x != int(x) else f"${int(x):,}"


class Ctx:
    """Speakers plus deterministic pickers; ``a`` speaks first (Person1), ``b`` second."""

    def __init__(self, rng: random.Random, names: list[str]):
        self.r = rng
        self.people = [person(n) for n in names]
        self.a, self.b = self.people[0], self.people[1]

    def third(self) -> Person:
        return self.people[2]

    def pick(self, *options):
        return self.r.choice(options)

    def day(self) -> str:
        return self.r.choice(DAYS)

    def dates(self, k: int = 1) -> list[str]:
        """``k`` increasing dates within one month, e.g. ``["March 4", "March 11"]``."""
        month = self.r.choice(MONTHS)
        return [f"{month} {d}" for d in sorted(self.r.sample(range(1, 29), k))]

    def date(self) -> str:
        return self.dates(1)[0]

    def times(self, lo: int, hi: int, k: int = 1) -> list[str]:
        """``k`` increasing clock times between hours ``lo`` and ``hi`` (24 h), written ``7:30 pm``."""
        slots = sorted(self.r.sample([h * 60 + m for h in range(lo, hi + 1) for m in (0, 15, 30, 45)], k))
        return [f"{(s // 60 - 1) % 12 + 1}:{s % 60:02d} {'am' if s < 720 else 'pm'}" for s in slots]

    def time(self, lo: int, hi: int) -> str:
        return self.times(lo, hi, 1)[0]

    def price(self, lo: int, hi: int, step: int = 1) -> int:
        return self.r.randrange(lo, hi + 1, step)


Scenario = Callable[[Ctx], tuple[list[str], str]]
SCENARIOS: list[tuple[str, Scenario]] = []


def scenario(topic: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS.append((topic, fn))
        return fn

    return register


# ---------------------------------------------------------------------------- scenarios
@scenario("hotel check-in")
def _hotel(c: Ctx):
    g, s = c.a, c.b
    k = c.r.randint(2, 7)
    nights, room = f"{NUM[k]} nights", c.pick("single room", "double room", "twin room", "suite", "family room")
    price, no, bt = c.price(70, 320, 5), c.r.randint(1, 9) * 100 + c.r.randint(1, 30), c.time(6, 8)
    hotel = c.pick(*HOTELS)
    turns = [
        c.pick(
            f"Good evening. I have a reservation under the name {g}.",
            f"Hi, I'm {g}. I booked a room here.",
            f"Hello, my name is {g}. I'd like to check in, please.",
        ),
        c.pick(
            f"Welcome to {hotel}, {g}. I'm {s}. Yes, I see a {room} for {nights}.",
            f"Good evening, {g}, welcome to {hotel}. I'm {s}. I can see a {room} for {nights}.",
        ),
        c.pick("Perfect. How much is it per night again?", "Great. Could you remind me of the price per night?"),
        c.pick(f"It's {money(price)} per night, taxes included.", f"The rate is {money(price)} a night."),
        c.pick("And is breakfast included?", "Is breakfast included in the price?"),
        c.pick(
            f"Yes, breakfast is served from {bt} in the restaurant.", f"It is. Breakfast starts at {bt} every morning."
        ),
        c.pick("Wonderful. Which room am I in?", "Great, thanks. What's my room number?"),
        c.pick(
            f"You're in room {no}. Here is your key card. Enjoy your stay!", f"Room {no}. The lifts are on your left."
        ),
    ]
    return turns, (
        f"{g} checks in at {hotel} for {nights} in a {room}. {s} says it costs {money(price)} per night, "
        f"gives {g.him} room {no} and says breakfast starts at {bt}."
    )


@scenario("restaurant booking")
def _restaurant(c: Ctx):
    st, cu = c.a, c.b
    rest, size, day = c.pick(*RESTAURANTS), NUM[c.r.randint(2, 8)], c.day()
    t1, t2 = c.times(18, 21, 2)
    if c.r.random() < 0.5:
        t1, t2 = t2, t1
    req = c.pick("a table by the window", "a high chair for a baby", "a quiet corner table", "a table on the terrace")
    full = c.r.random() < 0.5
    turns = [
        c.pick(f"Good afternoon, {rest}, this is {st} speaking. How can I help?", f"Hello, {rest}, {st} here."),
        c.pick(
            f"Hi {st}, I'm {cu}. I'd like to book a table for {size} on {day} at {t1}.",
            f"Hello, this is {cu}. Do you have a table for {size} people on {day} at {t1}?",
        ),
        f"I'm sorry, {t1} is fully booked. I could offer you {t2} instead."
        if full
        else c.pick("Yes, that's available.", f"Let me check... yes, {t1} on {day} is free."),
        (f"{t2} works fine. " if full else "Great. ")
        + c.pick(f"Could we also have {req}?", f"And could we get {req}?"),
        c.pick("Of course, I've noted that. Could I have a phone number?", "No problem. May I have a contact number?"),
        f"Sure, it's 0{c.r.randint(100, 999)} {c.r.randint(100000, 999999)}.",
        c.pick(f"Thank you, {cu}. See you on {day}!", f"All set, {cu}. We look forward to seeing you."),
    ]
    if full:
        return turns, (
            f"{cu} wants a table for {size} at {rest} on {day} at {t1}, but it is full, so {st} books "
            f"{t2} instead and notes the request for {req}."
        )
    return turns, f"{cu} books a table for {size} at {rest} on {day} at {t1}. {st} notes the request for {req}."


_REASONS = (
    ("I don't use it enough anymore.", "{he} does not use it enough"),
    ("It's become too expensive for me.", "it has become too expensive"),
    ("I'm moving abroad for work.", "{he} is moving abroad"),
    ("I've found a cheaper alternative.", "{he} has found a cheaper alternative"),
)


@scenario("cancelling a subscription")
def _subscription(c: Ctx):
    cu, ag = c.a, c.b
    svc = c.pick(
        "StreamBox video", "Melody music", "FreshPlate meal kit", "CloudNest storage", "Weekly Reader magazine"
    )
    fp, tp = c.pick(*_REASONS)
    why, disc, end = tp.format(he=cu.he), c.pick(20, 25, 30, 50), c.date()
    stay = c.r.random() < 0.3
    turns = [
        c.pick(
            f"Hi, my name is {cu}. I'd like to cancel my {svc} subscription.",
            f"Hello, I'm {cu} and I want to stop my {svc} subscription, please.",
        ),
        c.pick(
            f"I'm sorry to hear that, {cu}. This is {ag}. May I ask why?",
            f"I'm {ag}, I can help. Why do you want to leave?",
        ),
        fp,
        c.pick(
            f"I understand. If you stay, we can give you {disc}% off for the next three months.",
            f"What if I offered you {disc}% off for three months?",
        ),
        "Actually, that sounds fair. I'll stay."
        if stay
        else c.pick("No, thank you. I'd really like to cancel.", "That's kind, but my mind is made up."),
        f"Great, the discount starts with your next bill on {end}."
        if stay
        else f"No problem. Your subscription ends on {end}, and you won't be charged again.",
    ]
    if stay:
        return turns, (
            f"{cu} calls to cancel {cu.his} {svc} subscription because {why}. {ag} offers {disc}% off for "
            f"three months, so {cu} decides to stay."
        )
    return turns, (
        f"{cu} cancels {cu.his} {svc} subscription because {why}. {cu} declines {ag}'s offer of {disc}% off, "
        f"so it ends on {end}."
    )


_BROKEN = {
    "kettle": ("leaking", "with a cracked lid"),
    "blender": ("with a cracked jug", "with a broken motor"),
    "desk lamp": ("with a broken switch", "with a bent arm"),
    "coffee machine": ("leaking", "with a cracked tank"),
    "toaster": ("with a broken lever", "with a dented side"),
    "bluetooth speaker": ("with a torn cover", "with a broken button"),
    "vase": ("cracked", "in pieces"),
    "mirror": ("cracked", "with a chipped frame"),
}


@scenario("refund for a broken item")
def _refund(c: Ctx):
    ag, cu = c.a, c.b
    item = c.pick(*_BROKEN)
    dmg, order, price, days = c.pick(*_BROKEN[item]), c.r.randint(10000, 99999), c.price(15, 240), c.pick(3, 5, 7, 10)
    keep = c.r.random() < 0.5
    turns = [
        c.pick(f"Customer service, {ag} speaking. How can I help?", f"Hello, this is {ag} from HomeGoods support."),
        c.pick(
            f"Hi {ag}, I'm {cu}. The {item} I ordered arrived {dmg}.",
            f"Hello, my name is {cu}. My new {item} came {dmg}.",
        ),
        c.pick("I'm so sorry about that. Could you give me your order number?", "Oh no. What's your order number?"),
        c.pick(f"It's {order}.", f"Sure, it's {order}."),
        f"Thank you. I can see the {item} for {money(price)}. Would you like a replacement or a refund?",
        c.pick("A refund, please.", "I'd prefer my money back, to be honest."),
        f"Done. You'll get {money(price)} back on your card within {days} working days. "
        + ("You can keep the item." if keep else "Please send the item back with the free label I'm emailing you."),
    ]
    tail = "and " + cu.he + " can keep it." if keep else f"and {cu} must send it back with a free label."
    return turns, (
        f"{cu}'s {item} arrived {dmg}. {ag} refunds {money(price)}, which will reach {cu.his} card "
        f"within {days} working days, {tail}"
    )


@scenario("delayed parcel")
def _parcel(c: Ctx):
    cu, ag = c.a, c.b
    item = c.pick("a winter jacket", "two books", "a set of pans", "a pair of boots", "a printer", "a board game")
    d1, d2 = c.dates(2)
    cause = c.pick("a storm", "a backlog at the sorting centre", "a strike at the depot", "a damaged address label")
    fee, refund = c.pick(4.99, 5.99, 7.50, 9.99), c.r.random() < 0.5
    turns = [
        c.pick(
            f"Hello, my name is {cu}. I ordered {item} on {d1}, and it still hasn't arrived.",
            f"Hi, this is {cu}. My parcel with {item}, ordered on {d1}, is late.",
        ),
        c.pick(
            f"I'm sorry, {cu}. I'm {ag}. Do you have the tracking number?",
            f"{ag} here. Can I have your tracking number?",
        ),
        f"Yes, it's TR{c.r.randint(1000000, 9999999)}.",
        f"Thanks. I can see your parcel was delayed by {cause}.",
        c.pick("So when can I expect it?", "When will it get here, then?"),
        f"It should be delivered on {d2}." + (f" I'll also refund the {money(fee)} delivery fee." if refund else ""),
    ]
    s = f"{cu}'s parcel with {item}, ordered on {d1}, is late because of {cause}. {ag} says it should arrive on {d2}"
    return turns, s + (f" and refunds the {money(fee)} delivery fee." if refund else ".")


@scenario("doctor appointment")
def _doctor(c: Ctx):
    rc, pa = c.a, c.b
    doc = "Dr. " + c.pick(*SURNAMES)
    sym = c.pick("a sore throat", "back pain", "a bad cough", "headaches", "a rash", "a sprained ankle", "an earache")
    (d1, d2), (t1, t2) = c.r.sample(DAYS[:5], 2), c.times(8, 17, 2)
    bring = c.pick("insurance card", "list of medicines", "vaccination record")
    turns = [
        c.pick(
            "Good morning, Riverside Medical Centre, how can I help?", "Hello, Riverside Medical Centre, reception."
        ),
        c.pick(
            f"Hi, this is {pa}. I'd like to see a doctor about {sym}.",
            f"Hello, my name is {pa}. I've had {sym} for a week.",
        ),
        f"I'm {rc}, let me look. {doc} is free on {d1} at {t1}.",
        c.pick(f"I'm afraid I work all day on {d1}. Anything else?", f"{d1} doesn't work for me, sorry."),
        f"How about {d2} at {t2}?",
        c.pick("That's perfect.", "Yes, that works."),
        c.pick(f"Great. Please bring your {bring}, {pa}.", f"You're booked, {pa}. Don't forget your {bring}."),
    ]
    return turns, (
        f"{pa} books an appointment with {doc} on {d2} at {t2} because of {sym}. {rc} asks {pa.him} "
        f"to bring {pa.his} {bring}."
    )


@scenario("job interview scheduling")
def _interview(c: Ctx):
    rec, cand, boss = c.a, c.b, c.third()
    co = c.pick(*COMPANIES)
    role = c.pick(
        "junior accountant",
        "marketing assistant",
        "software developer",
        "sales manager",
        "graphic designer",
        "office manager",
        "data analyst",
    )
    day, time = c.pick(*DAYS[:5]), c.time(9, 16)
    fmt = c.pick("video call", "face-to-face meeting")
    turns = [
        c.pick(f"Hello, is this {cand}?", f"Good morning, am I speaking with {cand}?"),
        c.pick("Yes, speaking.", "Yes, that's me. Who's calling?"),
        f"This is {rec} from {co}. We liked your application for the {role} position.",
        c.pick("Oh, that's great news!", "Thank you, I'm really glad to hear that."),
        f"We'd like to invite you to an interview on {day} at {time}. It will be a {fmt} with {boss}, our team lead.",
        c.pick(
            f"{day} at {time} is fine. Should I prepare anything?", "That suits me. Do I need to prepare anything?"
        ),
        c.pick("Just bring examples of your recent work.", "Please prepare a short presentation about yourself."),
    ]
    return turns, (
        f"{rec} from {co} invites {cand} to an interview for the {role} position on {day} at {time}. "
        f"It will be a {fmt} with {boss}."
    )


@scenario("lost luggage")
def _luggage(c: Ctx):
    pa, ag = c.a, c.b
    flight = c.pick("BA", "LH", "AF", "TK", "KL", "IB", "QR") + str(c.r.randint(100, 999))
    city, bag = c.pick(*CITIES), c.pick("red suitcase", "black suitcase", "blue backpack", "green duffel bag")
    when, hotel = c.pick("tomorrow morning", "tomorrow evening", "within 48 hours"), c.pick(*HOTELS)
    cash = c.pick(None, 50, 75, 100)
    turns = [
        c.pick(
            f"Excuse me, my {bag} didn't come off flight {flight} from {city}.",
            f"Hi, I've just arrived on {flight} from {city} and my {bag} is missing.",
        ),
        f"I'm sorry to hear that. I'm {ag}. Can I have your name and baggage tag?",
        f"I'm {pa}, and here's the tag.",
        c.pick(
            "Thank you. It looks like the bag is still at the transfer airport.",
            "It seems your bag missed the connection.",
        ),
        c.pick("What happens now?", "So when will I get it?"),
        f"It will be delivered to your hotel {when}. Where are you staying?",
        f"At {hotel}." + (" Can I buy a few things in the meantime?" if cash else ""),
    ] + ([f"Yes, you can spend up to {money(cash)} on essentials, and we'll pay you back."] if cash else [])
    s = f"{pa}'s {bag} did not arrive on flight {flight} from {city}. {ag} says it will be delivered to {hotel} {when}"
    return turns, s + (f", and {pa} may spend up to {money(cash)} on essentials." if cash else ".")


@scenario("bank card blocked")
def _card(c: Ctx):
    cu, ag = c.a, c.b
    amt, city = c.price(80, 900, 5), c.pick(*CITIES)
    shop = c.pick("an electronics shop", "a hotel", "an online store", "a jewellery shop")
    mine, days = c.r.random() < 0.5, c.pick(3, 5, 7)
    turns = [
        c.pick(
            f"Hello, I'm {cu}. My card was declined this morning.", f"Hi, this is {cu}. My bank card isn't working."
        ),
        c.pick(
            f"Good morning, {cu}, I'm {ag}. We blocked it after a {money(amt)} payment at {shop} in {city}.",
            f"I'm {ag}. I see we blocked your card because of a {money(amt)} payment at {shop} in {city}.",
        )
        + c.pick(" Did you make that payment?", " Was that you?"),
        f"Yes, that was me. I'm travelling in {city}." if mine else "No, I've never been to " + city + "!",
        "Thanks for confirming. I've unblocked your card, so you can use it again now."
        if mine
        else f"Then I'll cancel that card and send you a new one. It will arrive within {days} days.",
    ]
    s = f"{cu}'s card was blocked after a {money(amt)} payment in {city}. "
    if mine:
        return turns, s + f"{cu} confirms {cu.he} made it, so {ag} unblocks the card."
    return turns, s + f"{cu} did not make it, so {ag} cancels the card and sends a new one within {days} days."


@scenario("internet outage")
def _internet(c: Ctx):
    ag, cu = c.a, c.b
    since = c.pick("yesterday evening", "this morning", "Sunday night", "two days ago")
    outage, cause = c.r.random() < 0.5, c.pick("a damaged cable", "maintenance work", "a power cut at the exchange")
    fix, day = c.time(12, 22), c.day()
    t1, t2 = c.times(8, 16, 2)
    turns = [
        c.pick(f"Thank you for calling NetFast, this is {ag}.", f"NetFast support, {ag} speaking."),
        c.pick(
            f"Hi, I'm {cu}. My internet has been down since {since}.",
            f"Hello, this is {cu}. I've had no internet since {since}.",
        ),
        c.pick("Let me check your line.", "I'm sorry. One moment, please."),
        c.pick("Thanks.", "Sure, I'll wait."),
    ]
    if outage:
        turns.append(f"There's an outage in your area caused by {cause}. It should be fixed by {fix} today.")
        return turns, (
            f"{cu}'s internet has been down since {since}. {ag} explains there is a local outage caused "
            f"by {cause}, which should be fixed by {fix}."
        )
    turns += [
        "There's no outage in your area. Have you restarted the router?",
        "Yes, twice. It didn't help.",
        f"Then I'll send a technician on {day} between {t1} and {t2}.",
    ]
    return turns, (
        f"{cu}'s internet has been down since {since}. Restarting the router did not help, so {ag} books a "
        f"technician visit on {day} between {t1} and {t2}."
    )


@scenario("car rental")
def _car(c: Ctx):
    ag, cu = c.a, c.b
    car, k = c.pick("small car", "compact car", "SUV", "minivan", "convertible", "electric car"), c.r.randint(2, 10)
    per, ins = c.price(25, 90), c.pick(0, 8, 12, 15)
    place = c.pick("the airport", "the central station", "our city centre office")
    total = k * (per + ins)
    turns = [
        c.pick(f"Welcome to QuickRent, I'm {ag}. How can I help?", f"Hello, QuickRent, {ag} speaking."),
        c.pick(
            f"Hi, I'm {cu}. I'd like to rent {a(car)} for {NUM[k]} days.",
            f"Hello, this is {cu}. I need {a(car)} for {NUM[k]} days.",
        ),
        f"Sure. That's {money(per)} per day. Would you like full insurance for {money(ins or 10)} a day?",
        "Yes, please, I'd feel safer." if ins else "No, thanks, my credit card covers it.",
        f"Then the total is {money(total)}. Where would you like to pick it up?",
        f"At {place}, please." if place != "our city centre office" else "At your city centre office, please.",
    ]
    pl = "the city centre office" if place == "our city centre office" else place
    extra = f" with full insurance at {money(ins)} a day" if ins else ""
    return turns, (
        f"{cu} rents {a(car)} from {ag} for {NUM[k]} days at {money(per)} per day{extra}. The total is "
        f"{money(total)}, and {cu} will pick it up at {pl}."
    )


@scenario("borrowing a book")
def _library(c: Ctx):
    st, lib = c.a, c.b
    book = c.pick(
        "The Hidden Valley",
        "A Short History of Bridges",
        "Cooking with Rice",
        "The Silent Harbour",
        "Learning Spanish in Thirty Days",
        "Stars and Planets",
        "The Last Train North",
    )
    weeks, (due, ready) = c.pick(2, 3, 4), c.dates(2)
    free = c.r.random() < 0.6
    hello = c.pick(f"Nice to meet you, {st}. I'm {lib}.", f"Hi {st}, I'm {lib}. One moment.")
    turns = [c.pick(f"Hello, I'm {st}. I'm looking for the book {book}.", f"Hi, my name is {st}. Do you have {book}?")]
    if free:
        turns += [
            hello + " Yes, we have a copy on the shelf. Do you have your library card?",
            "Yes, here it is.",
            f"You can keep it for {NUM[weeks]} weeks. Please return it by {due}.",
            "Can I renew it online?",
            "Yes, once, on our website.",
        ]
        return turns, (
            f"{st} borrows {book} from the library. {lib} lends it for {NUM[weeks]} weeks and asks "
            f"{st.him} to return it by {due}."
        )
    turns += [
        hello + " All our copies are on loan at the moment. Shall I reserve one for you?",
        "Yes, please.",
        f"Done. It should be ready for you to collect on {ready}.",
        "Will you let me know?",
        "Yes, we'll send you a text message.",
    ]
    return (
        turns,
        f"{st} wants to borrow {book}, but all copies are on loan. {lib} reserves one, ready to collect on {ready}.",
    )


@scenario("planning a birthday")
def _birthday(c: Ctx):
    p, q, x = c.a, c.b, c.third()
    age, date = c.r.randint(18, 60), c.date()
    venue = c.pick(
        f"{p}'s flat", "the Italian place on " + c.pick(*STREETS), "the park by the river", "a bowling alley"
    )
    cake, amt = c.pick("a chocolate cake", "a lemon cake", "a cheesecake", "cupcakes"), c.price(10, 40, 5)
    turns = [
        f"{q}, {x} turns {age} on {date}. Shall we throw a surprise party?",
        c.pick(f"Great idea, {p}! Where should we have it?", f"I love it, {p}. Where, though?"),
        c.pick(f"What about {venue}?", f"I was thinking of {venue}."),
        c.pick(f"Perfect. I can bring {cake}.", f"Sounds good. I'll take care of the cake, maybe {cake}."),
        f"Great. If everyone chips in {money(amt)}, we can cover food and a present.",
        c.pick(
            "Fine by me. I'll message the others tonight.", "Deal. I'll tell the others, but not a word to " + f"{x}!"
        ),
    ]
    return turns, (
        f"{p} and {q} plan a surprise party for {x}'s {ordinal(age)} birthday on {date} at {venue}. "
        f"{q} will bring {cake}, and everyone pays {money(amt)}."
    )


@scenario("moving flat")
def _moving(c: Ctx):
    p, q = c.a, c.b
    area, day, time = c.pick(*STREETS), c.day(), c.time(7, 11)
    thing = (
        c.pick("his van", "some boxes", "a trolley", "his car")
        if q.he == "he"
        else c.pick("her van", "some boxes", "a trolley", "her car")
    )
    reward = c.pick("pizza", "dinner", "a few drinks")
    turns = [
        c.pick(
            f"{q}, are you free on {day}? I'm finally moving to a flat on {area}. Could you help?",
            f"Hey {q}, I'm moving to {area} on {day}. Could you help?",
        ),
        c.pick(f"Congratulations, {p}! Sure, I can help.", f"Of course, {p}. What time?"),
        f"We're starting at {time}. The furniture is the hard part.",
        f"No problem. I'll come at {time} and bring {thing.replace('his ', 'my ').replace('her ', 'my ')}.",
        f"You're a star. {reward.capitalize()} {'are' if reward.endswith('s') else 'is'} on me afterwards.",
    ]
    return turns, (
        f"{p} is moving to a flat on {area} on {day} and asks {q} for help. {q} agrees to come at {time} and "
        f"bring {thing}, and {p} will buy {reward}."
    )


@scenario("gym membership")
def _gym(c: Ctx):
    cu, st = c.a, c.b
    notice, last, fee = c.pick(14, 30, 60), c.date(), c.price(25, 70)
    why = c.pick("I'm moving to another city.", "I just don't have time anymore.", "I've started running outside.")
    turns = [
        c.pick(
            f"Hi, I'm {cu}. I'd like to cancel my gym membership.",
            f"Hello, my name is {cu}, and I want to end my membership.",
        ),
        c.pick(f"I'm {st}. Can I ask why, {cu}?", f"Sorry to see you go, {cu}. I'm {st}. Any particular reason?"),
        why,
        f"I understand. You need to give {notice} days' notice, so you'll pay one last fee of {money(fee)} on {last}.",
        c.pick("That's fine. Can I still use the gym until then?", "Okay. Can I keep coming until then?"),
        f"Yes, your card works until {last}.",
    ]
    return turns, (
        f"{cu} wants to cancel {cu.his} gym membership. {st} says {cu} must give {notice} days' notice, and "
        f"the last payment of {money(fee)} is on {last}."
    )


@scenario("flight change")
def _flight(c: Ctx):
    ag, cu = c.a, c.b
    city, (d1, d2), fee, t = c.pick(*CITIES), c.dates(2), c.pick(40, 60, 75, 90, 120), c.time(6, 21)
    turns = [
        c.pick(f"SkyJet customer service, {ag} speaking.", f"Hello, SkyJet, this is {ag}."),
        c.pick(
            f"Hi, I'm {cu}. I'm flying to {city} on {d1}, but I need to change the date.",
            f"Hello, my name is {cu}. Could I move my {d1} flight to {city}?",
        ),
        "Certainly. Which day would you prefer?",
        f"Is there anything on {d2}?",
        f"Yes, there's a flight at {t}. The change fee is {money(fee)}.",
        c.pick("Fine, please book it.", "That's a bit expensive, but okay."),
    ]
    return turns, (
        f"{cu} changes {cu.his} flight to {city} from {d1} to {d2}. {ag} books the {t} flight, and the change "
        f"fee is {money(fee)}."
    )


@scenario("exam results")
def _exam(c: Ctx):
    p, q = c.a, c.b
    subj = c.pick("maths", "chemistry", "history", "economics", "biology", "French", "statistics")
    passed, grade, retake = c.r.random() < 0.6, c.pick("an A", "a B", "a B+", "an A-", "a C"), c.date()
    turns = [c.pick(f"{q}, did you get your {subj} result?", f"Hi {q}! The {subj} results are out.")]
    if passed:
        turns += [
            f"Yes! I got {grade}. I can't believe it.",
            "Well done! You worked so hard for it.",
            c.pick(f"Thanks, {p}. Let's celebrate tonight.", f"Thanks, {p}. Dinner is on me."),
        ]
        return (
            turns,
            f"{q} tells {p} that {q.he} got {grade} in {subj}. {p} congratulates {q.him}, and they plan to celebrate.",
        )
    turns += [
        f"I failed, {p}. I'm so disappointed.",
        "Oh no, I'm sorry. Can you retake it?",
        f"Yes, the retake is on {retake}.",
        c.pick("I'll help you study if you like.", "We can revise together."),
    ]
    return turns, f"{q} failed {q.his} {subj} exam and will retake it on {retake}. {p} offers to help {q.him} study."


@scenario("buying a phone")
def _phone(c: Ctx):
    st, cu = c.a, c.b
    model, gb = c.pick("Nova 12", "Pixelon 8", "Zephyr X", "Orion Pro", "Lumo 5"), c.pick(128, 256, 512)
    color, price, months = c.pick("black", "silver", "blue", "green"), c.price(399, 1199, 50) - 1, c.pick(12, 24)
    plan = c.r.random() < 0.5
    turns = [
        c.pick(f"Hi, I'm {st}. Can I help you find something?", f"Good afternoon, I'm {st}. Looking for a new phone?"),
        f"Yes, I'm {cu}. I'm interested in the {model}.",
        f"Good choice. The {gb} GB version costs {money(price)}. We have it in {color}.",
        c.pick(f"{color.capitalize()} is great.", f"I'll take it in {color}.") + " Can I pay in instalments?",
        f"Yes, over {months} months that's {money(round(price / months, 2))} a month.",
        c.pick("I'll just pay in full today.", "I'd rather pay all at once.")
        if not plan
        else "Let's do the instalments.",
    ]
    how = f"over {months} months at {money(round(price / months, 2))} a month" if plan else "in full"
    return turns, f"{cu} buys a {color} {model} with {gb} GB from {st} for {money(price)} and pays {how}."


@scenario("password reset")
def _password(c: Ctx):
    ag, cu = c.a, c.b
    acct, mins = c.pick("online banking", "email", "shop", "streaming"), c.pick(10, 15, 30, 60)
    hint = c.pick(
        "check the spam folder", "use a new password with at least 12 characters", "log out of other devices first"
    )
    turns = [
        c.pick(
            f"Tech support, {ag} speaking. What can I do for you?", f"Hello, you're through to {ag} in tech support."
        ),
        c.pick(
            f"Hi {ag}, I'm {cu}. I forgot the password for my {acct} account.",
            f"Hello, this is {cu}. I'm locked out of my {acct} account.",
        ),
        "No problem. I've just sent a reset link to the email address on your account.",
        "I can't see it yet.",
        f"Please {hint}. The link is valid for {mins} minutes.",
        c.pick("Got it, thank you.", "Okay, I'll try that now."),
    ]
    return turns, (
        f"{cu} is locked out of {cu.his} {acct} account. {ag} sends a password reset link valid for {mins} "
        f"minutes and tells {cu.him} to {hint}."
    )


@scenario("ordering pizza")
def _pizza(c: Ctx):
    st, cu = c.a, c.b
    size, top = (
        c.pick("small", "medium", "large"),
        c.pick("margherita", "pepperoni", "mushroom", "vegetarian", "Hawaiian"),
    )
    side, street, mins = (
        c.pick("garlic bread", "a cola", "a salad", "chicken wings"),
        c.pick(*STREETS),
        c.pick(20, 30, 40, 45),
    )
    total = c.pick(12.5, 14.9, 16.5, 18.0, 21.5, 23.9)
    turns = [
        c.pick(f"Mario's Pizza, {st} speaking. What would you like?", f"Hi, this is {st} at Mario's Pizza."),
        c.pick(
            f"Hi, it's {cu}. Can I get a {size} {top} pizza, please?",
            f"Hello, I'm {cu}. One {size} {top} pizza, please.",
        ),
        c.pick("Anything else?", "Would you like a side with that?"),
        f"Yes, {side}, please.",
        "What's the address?",
        f"{c.r.randint(2, 98)} {street}.",
        f"That's {money(total)} in total. It'll be there in about {mins} minutes.",
    ]
    return turns, (
        f"{cu} orders a {size} {top} pizza and {side} from {st} for delivery to {street}. It costs "
        f"{money(total)} and will arrive in about {mins} minutes."
    )


@scenario("returning shoes")
def _shoes(c: Ctx):
    st, cu = c.a, c.b
    kind, size = c.pick("trainers", "boots", "sandals", "running shoes", "loafers"), c.r.randint(36, 45)
    when, big = c.pick("last Saturday", "on Monday", "a week ago", "yesterday"), c.r.random() < 0.5
    new, stock, price = size - 1 if big else size + 1, c.r.random() < 0.6, c.price(40, 160, 5)
    turns = [
        c.pick(f"Hi, I'm {st}. How can I help?", f"Good morning, I'm {st}. What can I do for you?"),
        f"Hello, I'm {cu}. I bought these {kind} in size {size} {when}, but they're too {'big' if big else 'small'}.",
        "Do you have the receipt?",
        f"Yes, here. Could I swap them for a size {new}?",
        f"Let me see... yes, we have size {new} in stock. Here you go."
        if stock
        else f"I'm afraid size {new} is sold out. I can refund the {money(price)} instead.",
        c.pick("Perfect, thanks.", "That's great.") if stock else "Okay, a refund is fine.",
    ]
    if stock:
        return (
            turns,
            (
                f"{cu} returns {kind} in size {size} because they are too {'big' if big else 'small'}. "
                f"{st} exchanges them for a size {new}."
            ),
        )
    return turns, (
        f"{cu} wants to swap {kind} in size {size} for a size {new}, but that size is sold out, so {st} refunds "
        f"{money(price)}."
    )


@scenario("asking directions")
def _directions(c: Ctx):
    p, q = c.a, c.b
    dest = c.pick(
        "the train station", "the museum", "the post office", "the town hall", "the bus station", "the cathedral"
    )
    street, land, mins = (
        c.pick(*STREETS),
        c.pick("the bakery", "the pharmacy", "the big fountain", "the cinema"),
        c.pick(5, 10, 15, 20),
    )
    turn = c.pick("left", "right")
    turns = [
        f"Excuse me, could you tell me how to get to {dest}? I'm {p}, I'm new in town.",
        c.pick(f"Of course, {p}. I'm {q}.", f"Sure! My name's {q}, by the way.")
        + f" Walk down {street} until you reach {land}, then turn {turn}.",
        c.pick("Is it far?", "How long does it take?"),
        f"About {mins} minutes on foot.",
        c.pick(f"Thank you so much, {q}!", f"Thanks, {q}, that's very kind."),
    ]
    return turns, (
        f"{p} asks {q} the way to {dest}. {q} tells {p.him} to walk down {street} to {land} and turn "
        f"{turn}, about {mins} minutes on foot."
    )


@scenario("rent increase")
def _rent(c: Ctx):
    ll, te = c.a, c.b
    old = c.price(700, 1800, 50)
    new, date = old + c.pick(100, 150, 200), c.date()
    deal = c.r.random() < 0.5
    mid = (old + new) // 2
    turns = [
        (
            f"Hi {te}, it's {ll}, your landlord. I'm afraid the rent will go up "
            f"from {money(old)} to {money(new)} from {date}."
        ),
        c.pick(f"That's a big jump, {ll}. I've always paid on time.", f"{money(new)}? That's a lot, {ll}."),
        "I know, but my costs have gone up too.",
        f"Could we meet in the middle at {money(mid)}?",
        f"Alright, {money(mid)} it is, since you're a good tenant."
        if deal
        else f"Sorry, {money(new)} is the lowest I can do.",
    ]
    if deal:
        return (
            turns,
            (
                f"{ll} tells {te} the rent will rise from {money(old)} to {money(new)} on {date}. "
                f"They agree on {money(mid)} instead."
            ),
        )
    return turns, (
        f"{ll} tells {te} the rent will rise from {money(old)} to {money(new)} on {date}. {te} asks for "
        f"{money(mid)}, but {ll} refuses."
    )


@scenario("pet sitting")
def _pets(c: Ctx):
    p, q = c.a, c.b
    pet, (d1, d2) = c.pick("cat", "dog", "two rabbits", "parrot", "hamster"), c.dates(2)
    meals, pay = c.pick("twice a day", "every morning", "morning and evening"), c.pick(None, 10, 15, 20)
    my = f"my {pet}"
    turns = [
        c.pick(
            f"Hi {q}, it's {p} from next door. Could you look after {my} from {d1} to {d2}?",
            f"{q}, it's {p}. I'm away from {d1} to {d2}. Could you watch {my} for me?",
        ),
        c.pick(f"Sure, {p}. What do I need to do?", f"Of course, {p}. Anything special?"),
        f"Just feed them {meals}. The food is in the kitchen."
        if pet == "two rabbits"
        else f"Just feed it {meals}. The food is in the kitchen.",
        "That's easy.",
        f"I'll pay you {money(pay)} a day." if pay else "I'll bring you something back from my trip.",
        c.pick("Deal.", "You don't have to, but thanks!"),
    ]
    return turns, (
        f"{p} asks {q} to look after {p.his} {pet} from {d1} to {d2}. {q} agrees to feed the "
        f"{'rabbits' if pet == 'two rabbits' else pet} {meals}" + (f" for {money(pay)} a day." if pay else ".")
    )


@scenario("weekend trip")
def _trip(c: Ctx):
    p, q = c.a, c.b
    dest = c.pick(
        "the seaside", "the mountains", "a lake cabin", "the old town of " + c.pick(*CITIES), "a wine village"
    )
    how, day, time, cost = (
        c.pick("train", "bus", "car"),
        c.pick("Friday", "Saturday"),
        c.time(6, 18),
        c.price(40, 180, 10),
    )
    turns = [
        c.pick(f"{q}, fancy a weekend trip to {dest}?", f"Hey {q}, let's get away this weekend. How about {dest}?"),
        c.pick(f"I'd love that, {p}! How do we get there?", f"Great idea, {p}. How would we travel?"),
        f"We could take the {how} on {day} at {time}."
        if how != "car"
        else f"I can drive. We'd leave on {day} at {time}.",
        "And where do we sleep?",
        f"I found a guesthouse. It's {money(cost)} each for two nights.",
        c.pick("Book it!", "Sounds perfect, let's do it."),
    ]
    go = f"by {how}" if how != "car" else f"with {p} driving"
    return turns, (
        f"{p} and {q} plan a weekend trip to {dest}. They leave {go} on {day} at {time} and stay in a "
        f"guesthouse for {money(cost)} each."
    )


@scenario("haircut appointment")
def _hair(c: Ctx):
    st, cu, sty = c.a, c.b, c.third()
    svc, price = c.pick("haircut", "trim", "colour treatment", "haircut and beard trim"), c.price(20, 90, 5)
    day, time = c.day(), c.time(9, 18)
    turns = [
        c.pick(f"Studio Shine, this is {st}.", f"Hello, Studio Shine, {st} speaking."),
        f"Hi, it's {cu}. I'd like to book a {svc}, please.",
        f"Sure. {sty} has a free slot on {day} at {time}.",
        c.pick("Great. How much is it?", "That works. What's the price?"),
        f"A {svc} is {money(price)}.",
        c.pick("Perfect, please book me in.", "Fine, see you then."),
    ]
    return (
        turns,
        f"{cu} books a {svc} with {sty} at Studio Shine on {day} at {time}. {st} says it costs {money(price)}.",
    )


@scenario("plumber repair")
def _plumber(c: Ctx):
    cu, pl = c.a, c.b
    prob = c.pick("a leaking pipe under the sink", "a broken boiler", "a blocked toilet", "a dripping shower")
    day = c.pick("tomorrow", "this afternoon", "on " + c.day())
    t1, t2 = c.times(8, 17, 2)
    fee = c.price(40, 120, 5)
    turns = [
        c.pick(f"Hello, is this {pl}, the plumber?", f"Hi, am I speaking to {pl}? I need a plumber."),
        "Yes, that's me. What's the problem?",
        f"I'm {cu}. I've got {prob}.",
        f"I can come {day} between {t1} and {t2}.",
        c.pick("How much will it cost?", "What do you charge?"),
        f"The call-out fee is {money(fee)}, plus parts.",
        c.pick("Okay, see you then.", "Fine, thanks."),
    ]
    return turns, (
        f"{cu} calls {pl} about {prob}. {pl} will come {day} between {t1} and {t2} and charges a "
        f"{money(fee)} call-out fee plus parts."
    )


@scenario("concert tickets")
def _concert(c: Ctx):
    p, q = c.a, c.b
    band, venue = (
        c.pick("The Night Owls", "Blue Harbour", "Velvet Echo", "Paper Lanterns", "Sunday Drivers"),
        c.pick("the City Arena", "the Jazz Cellar", "the open-air stage in the park", "the Palace Theatre"),
    )
    date, each, k = c.date(), c.price(25, 120, 5), c.r.randint(2, 4)
    turns = [
        c.pick(
            f"{q}, {band} are playing at {venue} on {date}!",
            f"Guess what, {q}? {band} have a show at {venue} on {date}.",
        ),
        c.pick(f"No way, {p}! Are there tickets left?", f"Really, {p}? We have to go. Are tickets still available?"),
        f"Yes, {money(each)} each. Shall I buy {NUM[k]}?",
        f"Yes, {NUM[k]} tickets. " + c.pick("I'll send you my share.", "I'll pay you back tomorrow."),
        f"Done. That's {money(each * k)} in total.",
    ]
    return turns, (
        f"{p} buys {NUM[k]} tickets for {band} at {venue} on {date} at {money(each)} each. The total is "
        f"{money(each * k)}, and {q} will pay {q.his} share."
    )


@scenario("noisy neighbour")
def _noise(c: Ctx):
    p, q = c.a, c.b
    what, when = (
        c.pick("loud music", "drilling", "a barking dog", "the TV"),
        c.pick("last night", "every evening this week"),
    )
    hour = c.pick("10 pm", "10:30 pm", "11 pm")
    turns = [
        c.pick(
            f"Hi, I'm {p} from the flat below. Have you got a minute?", f"Hello, I'm {p}, your downstairs neighbour."
        ),
        c.pick(f"Hello, I'm {q}. Is something wrong?", f"Hi {p}, I'm {q}. What's up?"),
        f"I'm afraid {what} from your flat kept me awake {when}.",
        c.pick("Oh, I'm really sorry. I didn't realise it was so loud.", "I'm so sorry, I had no idea."),
        f"Could you keep it down after {hour}? I start work early.",
        f"Of course. Nothing after {hour}, I promise.",
    ]
    return (
        turns,
        f"{p} complains to {q} that {what} kept {p.him} awake {when}. {q} apologises and promises quiet after {hour}.",
    )


@scenario("taxi booking")
def _taxi(c: Ctx):
    dp, cu = c.a, c.b
    street, dest = c.pick(*STREETS), c.pick("the airport", "the central station", "the ferry terminal", "the hospital")
    day, time, fare = c.pick("tomorrow", "on " + c.day()), c.time(4, 22), c.price(18, 75)
    turns = [
        c.pick(f"City Cabs, {dp} speaking.", f"Good evening, City Cabs, this is {dp}."),
        f"Hi, I'm {cu}. I need a taxi to {dest} {day} at {time}.",
        "Sure. What's the pickup address?",
        f"{c.r.randint(1, 120)} {street}.",
        f"Booked. The fare to {dest} is about {money(fare)}.",
        c.pick("Can I pay by card?", "Do your drivers take cards?"),
        "Yes, all our cars take cards.",
    ]
    return turns, (
        f"{cu} books a taxi with {dp} from {street} to {dest} {day} at {time}. The fare is about "
        f"{money(fare)}, and {cu} can pay by card."
    )
