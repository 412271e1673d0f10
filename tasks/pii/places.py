"""Street addresses in the shapes of many countries: a street line with a house number above or beside a
postal-code line, a block of short lines ending in a postal code, Russian abbreviated parts, CJK
addresses by their place words, or whatever follows "address:", "ship to", "I live at" … on its line.
"""

from tasks.pii.names import UNCASED_LETTERS

_ADDRESS_CUES = (
    r"address(?:[ \t]+(?:is|to))?|addr|lives?[ \t]+at|living[ \t]+at|located[ \t]+at|"
    r"ship(?:ped|ping)?(?:[ \t]+it)?[ \t]+to|"
    r"deliver(?:y|ed)?(?:[ \t]+it)?[ \t]+to|send(?:[ \t]+it)?[ \t]+to|mail(?:[ \t]+it)?[ \t]+to|"
    r"adresse|direcci[oó]n|indirizzo|endere[cç]o|adres|adresa|адрес"
)
# A period that ends a sentence: not one after an abbreviation ("H.No. 12", "ул. Ленина", "St. Louis").
_ABBREVIATIONS = r"TP|Tp|No|Nr|St|Rd|Ave|Av|Avda|Apt|Dr|Ste|Blvd|Str|Bldg|Pl|Sq|Ct|Ln|Hwy|Mt|Ft|Λεωφ|Πλ|Οδ"
# address parts written in lower case: Russian (г. город, ул. улица, д. дом …), Polish, Spanish, Italian
_LOWER_ABBREVIATIONS = r"ул|пр|ш|г|п|к|д|с|стр|наб|бул|пер|ал|алл|ст|мкр|ul|al|pl|os|nr|no|c|avda|pza|str"
_SENTENCE_END = rf"(?:;|(?<!\b\p{{L}}|\b(?:{_ABBREVIATIONS}|{_LOWER_ABBREVIATIONS}))[.!?])(?=[ \t]|$)"
# the rest of the sentence on its line; it must hold a digit (a house number or a postal code)
AFTER_ADDRESS_CUE = (
    rf"(?<=\b(?i:{_ADDRESS_CUES})\b[ \t]{{0,20}}(?:[:=][ \t]{{0,20}})?)(?![ \t:=]|(?i:to|is)\b)"
    rf"(?=(?:(?!{_SENTENCE_END})[^\n])*\d)[^\n]+?(?={_SENTENCE_END}|[ \t]*$|\))"
)
_STREET_WORDS = (
    r"rue|avenue|chemin|allée|boulevard|quai|route|impasse|via|viale|piazza|calle|avenida|paseo|rua|travessa|"
    r"ul\.|ulica|aleja|plac|strada|straße|strasse|số|ngõ|hẻm|đường|phố"
)
_LINK = r"de|la|del|della|di|da|das|do|dos|van|der|den|von|du|des|le|les|am|an|im"
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,5})*\b"
_LINE_STARTS = r"(?<=^[ \t>]*|[,:;][ \t]*)"  # a line, or a field of it, begins
_WORDS = rf"(?:(?!{_SENTENCE_END})[^\n,;:!?]){{0,40}}"  # the rest of a street line
_STREET_LINE = (
    rf"(?:\b{_HOUSE},?[ \t]+\p{{L}}{_WORDS}"  # 4068 Jacob Stream, 435, rue de Samson
    rf"|(?<=^[ \t>]*|[,:;][ \t]*|\b(?i:{_ADDRESS_CUES})\b[ \t]+)"  # street first, where a line or field begins
    rf"(?:[\p{{L}}\p{{M}}.'-]+[ \t]+){{0,4}}{_HOUSE}{_WORDS}"  # Röhrdanzplatz 83/53, H.No. 198, Via Roma, 6
    rf"|{_LINE_STARTS}(?:(?i:{_STREET_WORDS})|[\p{{L}}\p{{M}}'-]+[ \t]+(?:{_LINK}))\b{_WORDS}"  # rue François
    # Via Daniele, 376
    rf"|{_LINE_STARTS}[\p{{L}}\p{{M}}.'-]+(?:[ \t]+[\p{{L}}\p{{M}}.'-]+){{0,3}},[ \t]*{_HOUSE}{_WORDS})"
)
_POSTAL_LINE = (
    r"(?:ΤΚ|T\.?K\.?|C\.?P\.?|PLZ)?[ \t]*"  # a postal code's own label
    r"(?:[\p{L}\p{M} .'-]+,?[ \t]+[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?"  # Davidmouth, MH 95067
    rf"|\d{{5}}-?\d{{3}}\b{_WORDS}"  # 21632-692 da Costa do Amparo / ES
    rf"|\d{{4}}[ \t]?[A-Z]{{2}}\b{_WORDS}"  # 6783 OR, 4094YR\nReduzum (the city on its own line)
    r"(?:\n[ \t]*\p{Lu}[\p{L}\p{M}'-]+(?:[ \t-]\p{Lu}[\p{L}\p{M}'-]+)?[ \t]*$)?"
    rf"|\d{{2,3}}[- ]?\d{{2,3}},?[ \t]+\p{{Lu}}{_WORDS}"  # 68124 Wolfach, 38-949 Gdańsk, 18033, Camporosso (IM)
    r"|[A-Z]{1,2}\d[A-Z\d]?[ \t]*\d[A-Z]{2}\b"  # L7H 5JJ
    # Muzaffarnagar-406812, Granada, 46885, Vadodara 712068
    r"|\p{Lu}[\p{L}\p{M} .'-]*(?:[-–,][ \t]?|[ \t])\d{5,6}\b"
    r"|\d{6}\b)"  # a Russian postal code closes the address
)
_BETWEEN = r"(?:[ \t]*(?:,[ \t]*\n?|\n)[ \t]*)"
# a district or a city line between street and postal code
_MIDDLE = rf"(?:(?!{_SENTENCE_END})[^\n,;:!?\d]){{2,40}}"
STREET_ADDRESS = rf"{_STREET_LINE}(?:{_BETWEEN}{_MIDDLE}){{0,2}}{_BETWEEN}{_POSTAL_LINE}"
# an address block: up to three short lines, whatever they hold, above a postal-code line
ADDRESS_BLOCK = rf"(?<=^[ \t]*)(?:(?:(?!{_SENTENCE_END})[^\n:!?]){{2,50}}\n[ \t]*){{1,3}}(?!\d{{6}}\b){_POSTAL_LINE}"
# "г. Лотошино, наб. Серафимовича, д. 8/9 к. 9, 849361": abbreviated parts, then the postal code
_ABBREVIATED_PART = rf"(?:{_LOWER_ABBREVIATIONS})\.[ \t]*[^\n,;]{{1,40}}"
_SETTLEMENT = r"(?:клх|снт|пгт|рп|нп)[ \t]+[^\n,;]{1,40}"  # kinds of village written without a period
ABBREVIATED_PARTS = (
    rf"(?<![\p{{L}}.])(?:{_ABBREVIATED_PART}|{_SETTLEMENT})(?:,[ \t]*{_ABBREVIATED_PART}){{1,4}},[ \t]*\d{{6}}\b"
)
_CJK_LETTERS = rf"{UNCASED_LETTERS}\u30fc\u30fb"  # with ー and ・, which are not Katakana to Unicode
_CJK_PLACE = r"県|都|府|省|市|区|县|町|村|镇|乡|路|街|号|番|丁目|座|楼|室|도|시|구|군|동|로|길"
CJK_ADDRESS = (  # starts at a run's start, holds a digit (a house or block number) within its first 60 characters
    rf"(?<![{_CJK_LETTERS}])(?=[^\n]{{0,60}}\d)[{_CJK_LETTERS}]{{2,12}}(?:{_CJK_PLACE})"
    rf"[{_CJK_LETTERS}A-Za-z\d\-－ ()（）]{{0,60}}(?<=\d|[{_CJK_LETTERS}])"
)
# "Số 4/82/772 Ngõ 67 Lê Lai phường Dương Minh": a line that begins with a house number's word
NUMBERED_LINE = (
    rf"(?<=^[ \t]*)(?:(?i:số|h\.no\.)[ \t]*\d|\d{{1,5}}(?:/\d{{1,5}})+[ \t]+\p{{Lu}}"
    rf"|\d{{1,5}}[ \t]+(?i:{_STREET_WORDS})\b)[^\n]*"
)

ADDRESS_PATTERNS = [
    (AFTER_ADDRESS_CUE, 0.6),
    (STREET_ADDRESS, 0.55),
    (ADDRESS_BLOCK, 0.5),
    (ABBREVIATED_PARTS, 0.5),
    (CJK_ADDRESS, 0.5),
    (NUMBERED_LINE, 0.5),
]
