"""Generated container names, Docker style: ``<adjective>_<surname>``."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random

ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful",
    "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "compassionate", "competent",
    "condescending", "confident", "cool", "cranky", "crazy", "dazzling", "determined", "distracted",
    "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "exciting",
    "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted",
    "goofy", "gracious", "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible",
    "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing", "loving",
    "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice", "nifty",
    "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless",
    "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty",
    "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
    "xenodochial", "youthful", "zealous", "zen",
)

SURNAMES = (
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "austin",
    "babbage", "banach", "bardeen", "bartik", "bassi", "bell", "benz", "bhabha", "bhaskara", "blackwell",
    "bohr", "booth", "borg", "bose", "boyd", "brahmagupta", "brattain", "brown", "carson", "chandrasekhar",
    "chatelet", "chaum", "cohen", "colden", "cori", "cray", "curie", "darwin", "davinci", "dijkstra",
    "dirac", "driscoll", "dubinsky", "easley", "edison", "einstein", "elion", "engelbart", "euclid",
    "euler", "faraday", "feistel", "fermat", "fermi", "feynman", "franklin", "galileo", "gates", "goldberg",
    "goldstine", "golick", "goodall", "hamilton", "hawking", "heisenberg", "hermann", "hertz", "hodgkin",
    "hofstadter", "hoover", "hopper", "hugle", "hypatia", "jackson", "jang", "jennings", "johnson",
    "joliot", "jones", "kalam", "kare", "keller", "kepler", "khorana", "kilby", "kirch", "knuth",
    "kowalevski", "lalande", "lamarr", "lamport", "leakey", "leavitt", "lehmann", "lewin", "lichterman",
    "liskov", "lovelace", "lumiere", "mahavira", "margulis", "matsumoto", "maxwell", "mayer", "mccarthy",
    "mcclintock", "mclean", "meitner", "mendel", "mendeleev", "merkle", "mirzakhani", "montalcini",
    "moore", "morse", "moser", "napier", "nash", "neumann", "newton", "nightingale", "nobel", "noether",
    "northcutt", "noyce", "panini", "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare",
    "poitras", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "roentgen", "rosalind", "saha",
    "sammet", "shamir", "shannon", "shaw", "shockley", "sinoussi", "snyder", "spence", "stallman",
    "stonebraker", "swanson", "swartz", "swirles", "tesla", "tharp", "thompson", "torvalds", "turing",
    "varahamihira", "visvesvaraya", "volhard", "wescoff", "wiles", "williams", "wilson", "wing", "wozniak",
    "wright", "yalow", "yonath",
)


class _Urandom:
    """The two draws :func:`generate` makes, from os.urandom as random.SystemRandom's are
    (a 64-bit draw reduced modulo a list of a few hundred: bias below 2**-50), without
    importing random on the ``run`` path."""

    @staticmethod
    def choice(seq):
        return seq[int.from_bytes(os.urandom(8), "little") % len(seq)]

    @staticmethod
    def randint(a: int, b: int) -> int:
        return a + int.from_bytes(os.urandom(8), "little") % (b - a + 1)


def generate(taken: set[str], *, rng: random.Random | None = None) -> str:
    """A name not in ``taken``; after a few collisions a digit is appended, like Docker."""
    r = rng if rng is not None else _Urandom
    for attempt in range(100):
        name = f"{r.choice(ADJECTIVES)}_{r.choice(SURNAMES)}"
        if name == "boring_wozniak":  # Steve Wozniak is not boring (Docker's rule)
            continue
        if attempt >= 3:
            name += str(r.randint(0, 9))
        if name not in taken:
            return name
    raise RuntimeError("could not generate a unique container name")
