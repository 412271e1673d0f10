"""Names where people write them: after a greeting, an introduction, a sign-off, a title or a role, in a
`name=` field, in "From …:" and "ticket from …"; before "here", "wrote", "<email>", ", login <email>". A name is
capitalised words in any cased script (particles such as "van der" allowed), or a run of letters of a script
without case (CJK, Arabic, Devanagari …). Cue words cover the languages support desks see most.
"""

_WORD = r"(?:\p{Lu}[\p{Ll}\p{M}]+(?:['’-]\p{Lu}?[\p{Ll}\p{M}]+)*(?:\p{Lu}[\p{Ll}\p{M}]+)?|\p{Lu}\.)"  # or an initial
_PARTICLE = r"(?:van|von|der|den|het|op|de|del|della|di|da|das|do|dos|du|la|le|bin|ibn|al|el|ter|ten|zu|y)"
# Capitalised words after a cue that are not names ("Hi Team", "Thanks All", "Dear Sir").
NOT_NAMES = (
    "Team|Support|Service|Services|Everyone|Everybody|All|There|World|Sir|Madam|Madame|Customer|Client|User|Agent|"
    "Admin|Manager|Again|Guys|Folks|Friend|Friends|Please|Thanks|Thank|Hello|Hi|Dear|The|A|An|I|We|You|It|This|"
    "That|My|Our|Your|In|On|At|For|Re|Fwd|Subject|Sent|To|Cc|Date|Question|Answer|Note|Ticket|Order|Account|Hope|"
    "Just|Good|Morning|Afternoon|Evening|So|Ok|Okay|Yes|No|Not|And|But|Or|If|When|What|Why|How|Who|Where|Which|"
    "Can|Could|Would|Is|Are|Do|Does|Did|Will|Here|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
    "January|February|March|July|September|October|November|December|Best|Regards|Cheers|"  # not April, May, June…
    # what a prompt starts with, which the NER now and then calls a person
    "Convert|Translate|Summarise|Summarize|Classify|Explain|Compute|Calculate|Sort|Count|Spell|Uppercase|"
    "Lowercase|Reverse|Write|List|Describe|Compare|Define|Rewrite|Extract|Find|Give|Generate|Solve|Simplify|"
    "Evaluate|Tell|Check|Show|"
    "Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra"  # titles come before a name ("cc Dr. Okafor"), they are not one
)
_CASED = rf"(?!(?:{NOT_NAMES})\b){_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t-]+)*(?!(?:{NOT_NAMES})\b){_WORD}){{0,3}}"
UNCASED_LETTERS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_RTL_INDIC = r"\p{Arabic}\p{Hebrew}\p{Devanagari}\p{Bengali}\p{Gurmukhi}\p{Tamil}\p{Telugu}\p{Thai}"
_UNCASED = (
    rf"[{UNCASED_LETTERS}]{{1,6}}(?:[ \u3000][{UNCASED_LETTERS}]{{1,6}})?"
    rf"|[{_RTL_INDIC}][{_RTL_INDIC}\p{{M}}]{{0,20}}(?:[ ][{_RTL_INDIC}][{_RTL_INDIC}\p{{M}}]{{0,20}}){{0,3}}"
)
NAME = rf"(?:{_CASED}|{_UNCASED})"
# two words or more: what a role alone ("Customer Li Wei", not "User Guide") must be followed by
_FULL_NAME = (
    rf"(?:(?!(?:{NOT_NAMES})\b){_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t-]+)*(?!(?:{NOT_NAMES})\b){_WORD}){{1,3}}|{_UNCASED})"
)
# a name found by what follows it starts where a word starts (else a long unspaced script is tried at every letter)
_NAME_AT_WORD = rf"(?<![\p{{L}}\p{{M}}]){NAME}"

_GAP = r"[ \t]*(?:\r?\n[ \t]*)?"  # a sign-off may end its line: "Thanks,\nMaria"
_QUOTE = r"[\"'“‘«]?"
# Words after which a capitalised word is a name, in the languages support desks see most.
_INTRODUCTIONS = (
    r"my name is|my name's|name is|hi|hello|hey|dear|greetings|thanks|thank you|many thanks|signed|"
    r"ask for|on behalf of|assigned to|reported by|requested by|submitted by|written by|sent by|forwarded by|"
    r"escalated by|handled by|cc|attn|attention|recipient|addressee|"
    r"sono|mi chiamo|je suis|je m'appelle|me llamo|soy|ich bin|ich heiße|mein name ist|meu nome é|sou|jestem|"
    r"nazywam się|меня зовут|benim adım|jmenuji se|hola|bonjour|hallo|ciao|olá|salut|merhaba|cześć|привет|"
    r"здравствуйте|dzień dobry|saludos|gracias|danke|merci|grazie|obrigad[oa]|cordialement|grüße|saluti|"
    r"pozdrawiam|s pozdravem|с уважением|atenciosamente|groeten|hälsningar"
)
# Sign-offs end their phrase with a comma or the line: "Best,\nMaria", "Regards, Ana" (not "Best Practices")
_SIGN_OFFS = r"regards|best regards|kind regards|warm regards|best wishes|best|cheers|sincerely|yours|yours truly"
# "This is Maria here", "I'm Ana and …": after these the name ends its clause ("This is Python code" has none)
_SELF = r"this is|i'm|i am"
_CLAUSE_END = r"(?=[ \t]*(?:[,.;:!?)\n]|$|(?:here|from|and|again|speaking|calling)\b))"
# People's roles: "Customer Li Wei"; with a colon only when the name is the field's whole value
_ROLES = r"customer|client|user|caller|member|patient|employee|colleague|agent|contact|requester|reporter"
_SIGN_OFF_LINE = rf"(?i:{_INTRODUCTIONS}|{_SIGN_OFFS})[^\n]{{0,25}}"  # "Thanks in advance!", "Best wishes from Lyon,"
_TITLES = r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|M|Sr|Sra|Srta|Dona?|Sig|Signor|Signora|Pan|Pani"
_MESSAGES = r"ticket|message|e-?mail|mail|note|request|reply|feedback|complaint|call|chat|letter|review|comment"
_NAME_FIELDS = (
    r"name|full[ _]?name|first[ _]?name|last[ _]?name|surname|user[ _]?name|contact[ _]?name|customer[ _]?name"
)
# a field's value may be written in lower case; it ends before the next `key=` or a word that is no name
_DEGREE = r"(?:[ \t]+[\p{L}.-]{1,10}\.)?"  # "Urte Henk B.Eng.", "Al Smith Jr."
_ADDRESS_LABELS = r"login|e-?mail|mail|user(?:name)?|account|contact|address"
_THEN_ADDRESS = rf"[ \t]*[,;][ \t]*(?:(?i:{_ADDRESS_LABELS})[ \t]*[:=]?[ \t]*)?[^\s,;]+@"  # ", login maria@…"
_LOWER_NAME = rf"[\p{{L}}\p{{M}}'’-]+(?:[ \t](?![\w.-]*[=:])(?!(?i:{NOT_NAMES})\b)[\p{{L}}\p{{M}}'’-]+){{0,3}}"

NAME_PATTERNS = [
    # "Hi Maria", "Thanks,\nMaria Garcia", "reported by Ana", "Recipient: João", "Ciao, sono Giulia"
    (rf"(?<=\b(?i:{_INTRODUCTIONS})\b[ \t]*[,:]?{_GAP}{_QUOTE}){NAME}", 0.6),
    (rf"(?<=\b(?i:{_SIGN_OFFS})[ \t]*(?:,{_GAP}|\n[ \t]*){_QUOTE}){NAME}", 0.6),  # "Best,\nMaria"
    (rf"(?<=\b(?i:{_SELF})[ \t]+{_QUOTE}){NAME}{_CLAUSE_END}", 0.6),  # "Hi, I'm Ana and …"
    (rf"(?<=^[ \t>]*{_SIGN_OFF_LINE}\n[ \t]*){NAME}(?=[ \t]*$)", 0.6),  # "Thanks in advance!\nMaria"
    (rf"(?<=\b(?i:{_ROLES})[ \t]+{_QUOTE}){_FULL_NAME}", 0.6),  # "Customer Li Wei"
    (rf"(?<=\b(?i:{_ROLES})[ \t]*:[ \t]*){NAME}(?=[ \t]*(?:[|;,\n]|$))", 0.6),  # "user: June Schofield |"
    (rf"(?<=\b(?:{_TITLES})\.?[ \t]+){NAME}", 0.6),  # "Dr. Okafor", "Frau Müller"
    (rf"(?<=^[ \t>]*(?i:from)[ \t]*:[ \t]*{_QUOTE}){NAME}", 0.6),  # "From: Maria <…>"
    # "From Maria:", not "From Paris to Rome"
    (rf"(?<=^[ \t>]*(?i:from)[ \t]+{_QUOTE}){NAME}(?=[\"'”’»]?[ \t]*(?::|<|$))", 0.6),
    (rf"(?<=\b(?i:{_MESSAGES})[ \t]+(?i:from|by)[ \t]+{_QUOTE}){NAME}", 0.6),  # "(ticket from Maria)"
    (rf"{_NAME_AT_WORD}(?=[ \t]*(?:,[ \t]*)?(?:here\b|wrote\b|writes\b|said\b|says\b|asked\b|asks\b|replied\b))", 0.6),
    (rf"{_NAME_AT_WORD}(?=[\"'”’»]?[ \t]*[<(\[][^>)\]\s]+@)", 0.6),  # "Maria Garcia <maria@…>"
    # "Maria Garcia, login maria@…", "Li Wei; e-mail: wei@…": a full name, then an address
    (rf"(?<![\p{{L}}\p{{M}}]){_FULL_NAME}(?={_DEGREE}{_THEN_ADDRESS})", 0.6),
    (rf"(?<=^[ \t]*(?:--|—|–|~)[ \t]*{_GAP}){NAME}", 0.6),  # signature: "-- Maria", "-- \nMaria"
    (rf"(?<=[ \t](?:--|—|–|~)[ \t]*){NAME}(?=[ \t]*$)", 0.6),  # "… thanks -- Maria" ending a line
    # name=maria garcia: surer than the NER, which may read `name=Maria` as one token and would else win
    (rf"(?<=\b(?i:{_NAME_FIELDS})[ \t]*[=:][ \t]*{_QUOTE}){_LOWER_NAME}", 0.9),
]
