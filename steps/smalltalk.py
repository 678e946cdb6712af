"""Smalltalk: greetings, thanks, goodbyes and questions about the assistant itself, in EN/FR/DE/ES.

No retrieval and no model: the classification step uses :func:`is_smalltalk` and :func:`meta_topic`
to route such requests straight to generation, which answers with :func:`smalltalk_reply` in the
user's language (English unless the request reads as French, German or Spanish).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

__all__ = ["Language", "MetaTopic", "detect_language", "fold", "is_smalltalk", "meta_topic", "smalltalk_reply"]

Language = Literal["en", "fr", "de", "es"]
MetaTopic = Literal["maker", "abilities", "nature", "identity"]


_PLAIN = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "¿": " ", "¡": " "})


def fold(text: str) -> str:
    """Lower-cased, accent-free, NFKC text with inverted Spanish marks and curly quotes made plain.

    Patterns below are written against folded text, so "¿Quién te creó?" and "quien te creo" match alike.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.translate(_PLAIN)).strip()


# --- language -------------------------------------------------------------------------------------------
_LANG_WORDS: dict[Language, frozenset[str]] = {
    "en": frozenset("i you the a is are how what who why do does can my your thanks thank hello hi to of it me".split()),
    "fr": frozenset(
        "je tu il est les des une un le la pour comment quoi qui merci bonjour salut bonsoir ca c'est avec dans pas "
        "t'a m'a es-tu etes-vous sais peux faire fichier liste erreur pourquoi quel quelle au revoir toi vous".split()
    ),
    "de": frozenset(
        "ich du ist und nicht wie was wer danke hallo ein eine der die das mit bist kannst dich mir warum "
        "tschuss guten morgen abend tag vielen bitte hat sind sie auf wiedersehen geht's gehts".split()
    ),
    "es": frozenset(
        "el la los las que como eres gracias hola una un por para con puedes te quien adios buenos buenas "
        "dias noches tardes hasta luego hizo creo sabes usted soy tengo me mi esta estas tal".split()
    ),
}
_LANG_MARKS: dict[Language, re.Pattern[str]] = {
    "es": re.compile(r"[¿¡ñáíóú]"),
    "de": re.compile(r"[äöüß]"),
    "fr": re.compile(r"[çèêàùâîôœ]|\b(?:qu|c|j|t|l|d|n)'"),
}


def detect_language(text: str) -> Language:
    """The most likely of English, French, German and Spanish: function words plus telltale characters.

    Short texts are often ambiguous ("no", "hallo"); ties go to English, then in the order fr, de, es.
    """
    raw = unicodedata.normalize("NFKC", text).casefold()
    words = re.findall(r"[\w'-]+", fold(text))
    scores: dict[Language, float] = {lang: float(sum(w in vocab for w in words)) for lang, vocab in _LANG_WORDS.items()}
    for lang, marks in _LANG_MARKS.items():
        if marks.search(raw):
            scores[lang] += 1.5
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > scores["en"] else "en"


# --- what is smalltalk ----------------------------------------------------------------------------------
_OPENERS = (
    # English
    r"hi+|hello+|hey+|heya|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|night|day)|morning|"
    r"thanks?(?: you)?|thank u|ty|thx|tnx|cheers|much appreciated|bye+|goodbye|bye bye|see (?:you|ya)(?: later| soon)?|"
    r"take care|ok(?:ay)?|cool|great|nice|awesome|perfect|lol|haha+|"
    # French
    r"bonjour|bonsoir|salut|coucou|allo|merci(?: bien| beaucoup| infiniment)?|au revoir|a (?:bientot|plus|\+)|"
    r"bonne (?:journee|soiree|nuit)|d'accord|parfait|super|genial|"
    # German
    r"hallo|hi zusammen|moin|servus|gruss gott|guten (?:morgen|tag|abend)|gute nacht|danke(?: schon| sehr)?|"
    r"vielen dank|tschuss|auf wiedersehen|bis (?:bald|spater|dann)|prima|alles klar|"
    # Spanish
    r"hola|buen(?:os|as) (?:dias|tardes|noches)|buen dia|gracias|muchas gracias|mil gracias|adios|"
    r"hasta (?:luego|pronto|manana)|chao|chau|vale|genial|perfecto"
)
_HOW_ARE_YOU = (
    r"how are (?:you|u)|how(?:'s| is) it going|what'?s up|sup|how do you do|nice to meet you|"
    r"(?:comment )?ca va|comment vas-tu|comment allez-vous|enchante|"
    r"wie geht(?:'s| es)?(?: dir| ihnen)?|wie gehts|freut mich|"
    r"que tal|como estas|como esta usted|como va|mucho gusto|encantado"
)
# A word that opens a real question: after a greeting, "hi, how do I sort?" is a question, not smalltalk.
_QUESTION_CUE = re.compile(
    r"\b(how|what|why|where|which|when|can|could|should|is there|does|do i|error|python|"
    r"comment|pourquoi|quoi|quel(?:le)?s?|ou|est-ce|erreur|"
    r"wie|was|warum|wo|welche[rsmn]?|kann|fehler|"
    r"como|que|por que|donde|cual(?:es)?|puedo|error|"
    # a connective after an acknowledgement usually starts a follow-up request ("great, now sort it")
    r"now|and|but|also|then|et|mais|puis|und|aber|dann|jetzt|y|pero|ahora)\b"
)
_SMALLTALK = re.compile(
    rf"^\W*(?:(?:{_OPENERS})\b[\s,!.]*)+(?P<tail>[\w\s,'-]{{0,24}}?)[\s!.?:)(;d-]*$"
)
_PLEASANTRY = re.compile(rf"^\W*(?:(?:{_OPENERS})\b\W*)*(?:{_HOW_ARE_YOU})\b[\w\s,'-]{{0,16}}[\s!.?:)(;-]*$")

# Questions about the assistant itself, by topic. Each names the assistant ("you", "this bot", "tu",
# "du", "te"...), so "who created Python?" stays a question.
_ASSISTANT = r"(?:you|u|ya|this (?:bot|assistant|chatbot|thing|tool|service|ai))"
_META: dict[MetaTopic, re.Pattern[str]] = {
    "maker": re.compile(
        rf"\bwho (?:made|created|built|wrote|programmed|developed|designed|trained|owns|runs) {_ASSISTANT}\b"
        rf"|\b(?:which|what) (?:company|team|people|organi[sz]ation) (?:made|built|created|developed|is behind) {_ASSISTANT}\b"
        rf"|\bwho(?:'s| is) (?:behind|your (?:creator|maker|developer|author|owner))\b|\bwhere (?:do|did) you come from\b"
        r"|\bqui (?:t'a|vous a) (?:cree|fait|programme|developpe|concu|construit|ecrit|entraine)"
        r"|\bqui est (?:ton|votre) (?:createur|auteur|developpeur)|\bd'ou viens-tu\b"
        r"|\bwer hat (?:dich|sie) (?:gemacht|programmiert|erstellt|gebaut|entwickelt|geschrieben|trainiert|erschaffen)"
        r"|\bwer (?:ist|sind) (?:dein|deine|ihr) (?:ersteller|entwickler|schopfer|macher)"
        r"|\bquien (?:te|lo) (?:creo|hizo|programo|desarrollo|construyo|diseno|entreno|escribio)"
        r"|\bquien es tu (?:creador|autor|desarrollador)"
    ),
    "abilities": re.compile(
        r"^\W*(?:(?:hi|hello|hey|ok|so|and|bonjour|salut|hallo|hola)\W+)?"
        r"(?:what (?:can|could) (?:you|u) (?:do|help(?: me)?(?: with)?)|what are (?:you|u) (?:able to do|able to help with|good at|for)"
        r"|what do (?:you|u) do|how can (?:you|u) help(?: me)?|what (?:kind of )?(?:questions|things) can (?:you|u) (?:answer|do)"
        r"|what is your (?:purpose|job)|what can i ask(?: you)?"
        r"|qu'est-ce que (?:tu|vous) (?:sais|peux|savez|pouvez) faire|(?:tu|vous) (?:sais|peux|savez|pouvez) faire quoi"
        r"|que (?:sais|peux)-tu faire|(?:tu sers|a quoi (?:tu )?sers(?:-tu)?)(?: a quoi)?|comment (?:tu peux|peux-tu) m'aider"
        r"|was kannst du(?: alles| eigentlich| so| denn)?(?: tun| machen)?|wobei kannst du (?:mir )?helfen"
        r"|wie kannst du (?:mir )?helfen|was machst du(?: so)?|wofur bist du (?:da|gut)"
        r"|que (?:puedes|sabes) hacer|en que (?:me )?puedes ayudar(?:me)?|para que sirves|como me puedes ayudar"
        r")\b(?:\W+(?:for me|for us|exactly|actually|here|else|then|anyway|overall|bot|alles|eigentlich|so|denn|genau|"
        r"fur mich|pour moi|exactement|ici|por mi|para mi|exactamente|aqui))*[\s!.?]*$"
    ),
    "nature": re.compile(
        r"\b(?:are|r) (?:you|u) (?:a |an |just a |really a |actually a )?(?:real |actual )?"
        r"(?:bot|robot|human|person|people|real|ai|a\.i\.|machine|program|computer|chatbot|chatgpt|gpt|llm|alive|sentient)\b"
        r"|\bam i (?:talking|speaking|chatting) (?:to|with) (?:a )?(?:human|bot|person|machine|real|robot|ai)"
        r"|\bwhat (?:model|llm|ai) (?:are you|do you use)\b"
        r"|\b(?:tu es|t'es|es-tu|vous etes|etes-vous) (?:un |une )?(?:vrai |vraie )?(?:robot|bot|humain|humaine|ia|machine|personne|programme|chatgpt)\b"
        r"|\b(?:bist du|sind sie) (?:ein |eine )?(?:echter |echte )?(?:bot|roboter|mensch|ki|maschine|person|programm|chatgpt)\b"
        r"|\b(?:eres|es usted) (?:un |una )?(?:bot|robot|humano|humana|persona|ia|maquina|programa|chatgpt|real)\b"
    ),
    "identity": re.compile(
        r"^\W*(?:(?:hi|hello|hey|bonjour|salut|hallo|hola)\W+)?"
        r"(?:who|what) (?:are|r) (?:you|u)|what(?:'s| is) your name|do you have a name"
        r"|qui es-tu|qui etes-vous|(?:tu es|t'es) qui|c'est quoi ton nom|comment (?:tu t'appelles|t'appelles-tu)"
        r"|wer bist du|wer sind sie|was bist du|wie heisst du"
        r"|quien eres|quien es usted|que eres|como te llamas|cual es tu nombre"
    ),
}


def meta_topic(text: str) -> MetaTopic | None:
    """Which question about the assistant ``text`` asks ("who made you?" is ``maker``), or None."""
    folded = fold(text)
    if len(folded) > 90:  # a long text mentioning "you" is a request, not a question about the assistant
        return None
    for topic, pattern in _META.items():
        if pattern.search(folded):
            return topic
    return None


def is_smalltalk(text: str) -> bool:
    """Greetings, thanks, goodbyes and pleasantries (any of the four languages), or a question about the assistant."""
    folded = fold(text)
    if len(folded) > 120:  # smalltalk is short; a long text is a request whatever it opens with
        return False
    if _PLEASANTRY.match(folded) or meta_topic(text) is not None:
        return True
    match = _SMALLTALK.match(folded)
    return bool(match) and not _QUESTION_CUE.search(match.group("tail"))


# --- replies --------------------------------------------------------------------------------------------
ReplyKind = Literal["thanks", "bye", "greeting", "how_are_you", "maker", "abilities", "nature", "identity", "other"]

_REPLIES: dict[Language, dict[ReplyKind, str]] = {
    "en": {
        "thanks": "You're welcome! Ask me anything else about Python.",
        "bye": "Goodbye! Come back with any Python question.",
        "greeting": "Hello! I answer questions about Python from its documentation. What would you like to know?",
        "how_are_you": "I'm doing well, thanks! What Python question can I help you with?",
        "maker": (
            "I was built by the developers of Conveyor, an open-source project that runs AI workflows as Kafka "
            "stream pipelines. I'm its demo assistant: I answer Python questions from the official Python 3.11 "
            "documentation and cite the pages I used."
        ),
        "abilities": (
            "I answer questions about Python from the official documentation, with citations: how to do something "
            "(\"how do I read a file line by line?\"), what a feature means (\"what is a generator?\"), or what an "
            "error says (paste the message or traceback). You may write in French, German or Spanish too; the "
            "documentation I quote is in English."
        ),
        "nature": (
            "I'm a bot, not a person: Conveyor's automated assistant. I answer Python questions by finding the "
            "relevant pages of the Python documentation and quoting them with citations."
        ),
        "identity": (
            "I'm Conveyor's assistant: I answer Python questions from the Python documentation, with citations. "
            "Ask how to do something, what a feature means, or paste an error."
        ),
        "other": "I'm here for Python questions: ask how to do something, what a feature means, or paste an error.",
    },
    "fr": {
        "thanks": "Avec plaisir ! N'hésitez pas si vous avez une autre question sur Python.",
        "bye": "Au revoir ! Revenez quand vous voulez avec une question sur Python.",
        "greeting": "Bonjour ! Je réponds aux questions sur Python à partir de sa documentation. Que voulez-vous savoir ?",
        "how_are_you": "Très bien, merci ! Quelle question sur Python puis-je vous aider à résoudre ?",
        "maker": (
            "J'ai été construit par les développeurs de Conveyor, un projet open source qui exécute des workflows "
            "d'IA sous forme de pipelines Kafka. Je réponds aux questions sur Python à partir de la documentation "
            "officielle (en anglais), avec les pages citées."
        ),
        "abilities": (
            "Je réponds aux questions sur Python à partir de la documentation officielle, avec citations : comment "
            "faire quelque chose (« comment lire un fichier ligne par ligne ? »), ce que signifie une notion "
            "(« qu'est-ce qu'un générateur ? ») ou ce que dit une erreur (collez le message ou la trace)."
        ),
        "nature": (
            "Je suis un bot, pas une personne : l'assistant automatique de Conveyor. Je trouve les pages utiles de "
            "la documentation Python et je les cite."
        ),
        "identity": (
            "Je suis l'assistant de Conveyor : je réponds aux questions sur Python à partir de sa documentation, "
            "avec citations."
        ),
        "other": "Je suis là pour les questions sur Python : demandez comment faire, ce que signifie une notion, ou collez une erreur.",
    },
    "de": {
        "thanks": "Gern geschehen! Fragen Sie ruhig weiter zu Python.",
        "bye": "Auf Wiedersehen! Kommen Sie gern mit jeder Python-Frage wieder.",
        "greeting": "Hallo! Ich beantworte Fragen zu Python anhand der Dokumentation. Was möchten Sie wissen?",
        "how_are_you": "Mir geht es gut, danke! Bei welcher Python-Frage kann ich helfen?",
        "maker": (
            "Ich wurde von den Entwicklern von Conveyor gebaut, einem Open-Source-Projekt, das KI-Workflows als "
            "Kafka-Stream-Pipelines ausführt. Ich beantworte Python-Fragen aus der offiziellen Python-Dokumentation "
            "(auf Englisch) und nenne die Seiten, die ich benutze."
        ),
        "abilities": (
            "Ich beantworte Fragen zu Python aus der offiziellen Dokumentation, mit Quellenangaben: wie man etwas "
            "macht („Wie lese ich eine Datei Zeile für Zeile?“), was ein Begriff bedeutet („Was ist ein "
            "Generator?“) oder was eine Fehlermeldung heißt (fügen Sie Meldung oder Traceback ein)."
        ),
        "nature": (
            "Ich bin ein Bot, kein Mensch: der automatische Assistent von Conveyor. Ich suche die passenden Seiten "
            "der Python-Dokumentation und zitiere sie."
        ),
        "identity": (
            "Ich bin der Assistent von Conveyor: Ich beantworte Python-Fragen aus der Python-Dokumentation, mit "
            "Quellenangaben."
        ),
        "other": "Ich bin für Python-Fragen da: Fragen Sie, wie etwas geht, was ein Begriff bedeutet, oder fügen Sie einen Fehler ein.",
    },
    "es": {
        "thanks": "¡De nada! Pregúntame lo que quieras sobre Python.",
        "bye": "¡Adiós! Vuelve cuando tengas una pregunta sobre Python.",
        "greeting": "¡Hola! Respondo preguntas sobre Python a partir de su documentación. ¿Qué quieres saber?",
        "how_are_you": "¡Muy bien, gracias! ¿En qué pregunta de Python te puedo ayudar?",
        "maker": (
            "Me construyeron los desarrolladores de Conveyor, un proyecto de código abierto que ejecuta flujos de "
            "IA como pipelines de Kafka. Respondo preguntas sobre Python a partir de la documentación oficial (en "
            "inglés) y cito las páginas que uso."
        ),
        "abilities": (
            "Respondo preguntas sobre Python a partir de la documentación oficial, con citas: cómo hacer algo "
            "(«¿cómo leo un archivo línea por línea?»), qué significa un concepto («¿qué es un generador?») o qué "
            "dice un error (pega el mensaje o el traceback)."
        ),
        "nature": (
            "Soy un bot, no una persona: el asistente automático de Conveyor. Busco las páginas relevantes de la "
            "documentación de Python y las cito."
        ),
        "identity": (
            "Soy el asistente de Conveyor: respondo preguntas sobre Python a partir de su documentación, con citas."
        ),
        "other": "Estoy aquí para preguntas sobre Python: pregunta cómo hacer algo, qué significa un concepto o pega un error.",
    },
}

_KINDS: tuple[tuple[ReplyKind, re.Pattern[str]], ...] = (
    ("thanks", re.compile(r"\b(thank|thanks|thx|ty|cheers|appreciate|merci|danke|dank|gracias)")),
    ("bye", re.compile(r"\b(bye|goodbye|see (you|ya)|good night|au revoir|a bientot|bonne nuit|tschuss|"
                       r"auf wiedersehen|gute nacht|bis bald|adios|hasta luego|hasta pronto|chao|chau)\b")),
    ("how_are_you", re.compile(rf"\b({_HOW_ARE_YOU})\b")),
    ("greeting", re.compile(r"\b(hi+|hello+|hey+|howdy|good (morning|afternoon|evening|day)|bonjour|bonsoir|salut|"
                            r"coucou|hallo|moin|servus|guten (morgen|tag|abend)|hola|buen(os|as) (dias|tardes|noches))\b")),
)


def smalltalk_reply(text: str) -> str:
    """A short reply to smalltalk, in the user's language; questions about the assistant get a real description."""
    lang = detect_language(text)
    topic = meta_topic(text)
    if topic is not None:
        return _REPLIES[lang][topic]
    folded = fold(text)
    for kind, pattern in _KINDS:
        if pattern.search(folded):
            return _REPLIES[lang][kind]
    return _REPLIES[lang]["other"]
