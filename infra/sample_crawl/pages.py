"""Vocabularies, sentence grammars and HTML templates for the synthetic crawl (`infra.sample_crawl.generate`).

Every page is built from a `random.Random` by combining short sentence parts with slot vocabularies,
so two unrelated pages share few word 5-grams while every sentence stays real English, German,
French or Spanish (language identifiers and text classifiers see ordinary text). A page is a
`PageDraft`: site boilerplate (cookie banner, header, nav, footer) around a `<main>` element whose
content is a list of raw HTML fragments and editable `Para` text blocks; `infra.sample_crawl.generate` edits the
`Para` words to make near-duplicates and renders the draft with `render_html`.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field, replace
from html import escape

LANGS = ("en", "de", "fr", "es")
CATEGORIES = ("fashion", "beauty", "electronics", "home", "grocery", "automotive", "sports", "toys")
CURRENCY = {"en": "USD", "de": "EUR", "fr": "EUR", "es": "EUR"}
TLD = {"en": "com", "de": "de", "fr": "fr", "es": "es"}


def _w(text: str) -> list[str]:
    return text.split("|")


UI = {
    "en": dict(
        home="Home",
        add="Add to cart",
        stock="In stock",
        ships="Ships within 2 business days",
        desc="Description",
        specs="Specifications",
        reviews="Customer reviews",
        size="Size",
        colour="Colour",
        qty="Quantity",
        sort="Sort by",
        filters="Filters",
        brand="Brand",
        price="Price",
        results="products",
        cookie="We use cookies to improve your experience and to show you personalised offers. "
        "By clicking Accept you agree to our use of cookies.",
        accept="Accept all",
        settings="Cookie settings",
        news="Sign up for our newsletter for weekly updates.",
        subscribe="Subscribe",
        search="Search",
        cart="Cart",
        by="By",
        stars="out of 5 stars",
        verified="Verified purchase",
        next="Next page",
        related="Related articles",
        reply="Reply",
        footer=_w("About us|Contact|Shipping|Returns|Privacy policy|Terms and conditions"),
        rights="All rights reserved.",
        sections=_w("World|Politics|Business|Technology|Science|Culture"),
    ),
    "de": dict(
        home="Startseite",
        add="In den Warenkorb",
        stock="Auf Lager",
        ships="Lieferung in 2 Werktagen",
        desc="Beschreibung",
        specs="Technische Daten",
        reviews="Kundenbewertungen",
        size="Größe",
        colour="Farbe",
        qty="Menge",
        sort="Sortieren nach",
        filters="Filter",
        brand="Marke",
        price="Preis",
        results="Artikel",
        cookie="Wir verwenden Cookies, um Ihnen ein besseres Einkaufserlebnis und persönliche Angebote zu "
        "bieten. Mit einem Klick auf Akzeptieren stimmen Sie der Verwendung zu.",
        accept="Alle akzeptieren",
        settings="Einstellungen",
        news="Melden Sie sich für unseren Newsletter an.",
        subscribe="Anmelden",
        search="Suche",
        cart="Warenkorb",
        by="Von",
        stars="von 5 Sternen",
        verified="Verifizierter Kauf",
        next="Nächste Seite",
        related="Weitere Artikel",
        reply="Antworten",
        footer=_w("Über uns|Kontakt|Versand|Rücksendungen|Datenschutz|AGB|Impressum"),
        rights="Alle Rechte vorbehalten.",
        sections=_w("Politik|Wirtschaft|Kultur|Wissen|Sport|Reisen"),
    ),
    "fr": dict(
        home="Accueil",
        add="Ajouter au panier",
        stock="En stock",
        ships="Expédié sous 2 jours ouvrés",
        desc="Description",
        specs="Caractéristiques",
        reviews="Avis clients",
        size="Taille",
        colour="Couleur",
        qty="Quantité",
        sort="Trier par",
        filters="Filtres",
        brand="Marque",
        price="Prix",
        results="articles",
        cookie="Nous utilisons des cookies pour améliorer votre expérience et vous proposer des offres "
        "personnalisées. En cliquant sur Accepter, vous acceptez leur utilisation.",
        accept="Tout accepter",
        settings="Paramètres",
        news="Inscrivez-vous à notre lettre d'information.",
        subscribe="S'inscrire",
        search="Rechercher",
        cart="Panier",
        by="Par",
        stars="sur 5 étoiles",
        verified="Achat vérifié",
        next="Page suivante",
        related="À lire aussi",
        reply="Répondre",
        footer=_w("Qui sommes-nous|Contact|Livraison|Retours|Confidentialité|Conditions générales"),
        rights="Tous droits réservés.",
        sections=_w("Politique|Économie|Culture|Sciences|Sport|Voyages"),
    ),
    "es": dict(
        home="Inicio",
        add="Añadir al carrito",
        stock="En stock",
        ships="Envío en 2 días laborables",
        desc="Descripción",
        specs="Especificaciones",
        reviews="Opiniones de clientes",
        size="Talla",
        colour="Color",
        qty="Cantidad",
        sort="Ordenar por",
        filters="Filtros",
        brand="Marca",
        price="Precio",
        results="productos",
        cookie="Utilizamos cookies para mejorar tu experiencia y mostrarte ofertas personalizadas. "
        "Al hacer clic en Aceptar, aceptas el uso de cookies.",
        accept="Aceptar todo",
        settings="Configuración",
        news="Suscríbete a nuestro boletín de noticias.",
        subscribe="Suscribirse",
        search="Buscar",
        cart="Carrito",
        by="Por",
        stars="de 5 estrellas",
        verified="Compra verificada",
        next="Página siguiente",
        related="Artículos relacionados",
        reply="Responder",
        footer=_w("Quiénes somos|Contacto|Envíos|Devoluciones|Privacidad|Condiciones"),
        rights="Todos los derechos reservados.",
        sections=_w("Política|Economía|Cultura|Ciencia|Deportes|Viajes"),
    ),
}

CATEGORY_NAMES = {
    "en": _w("Fashion|Beauty|Electronics|Home & Living|Grocery|Automotive|Sports & Outdoors|Toys & Games"),
    "de": _w("Mode|Beauty|Elektronik|Wohnen|Lebensmittel|Auto & Motorrad|Sport & Freizeit|Spielzeug"),
    "fr": _w("Mode|Beauté|Électronique|Maison|Épicerie|Auto & Moto|Sports & Loisirs|Jouets"),
    "es": _w("Moda|Belleza|Electrónica|Hogar|Alimentación|Motor|Deportes|Juguetes"),
}

# Product nouns per category, one "|" list per language in LANGS order.
NOUNS = {
    "fashion": (
        "jacket|sneakers|dress|jeans|hoodie|coat|shirt|boots",
        "Jacke|Turnschuhe|Kleid|Jeans|Pullover|Mantel|Hemd|Stiefel",
        "veste|baskets|robe|jean|pull|manteau|chemise|bottes",
        "chaqueta|zapatillas|vestido|vaqueros|jersey|abrigo|camisa|botas",
    ),
    "beauty": (
        "face cream|shampoo|lipstick|perfume|serum|body lotion|mascara|sunscreen",
        "Gesichtscreme|Shampoo|Lippenstift|Parfüm|Serum|Körperlotion|Wimperntusche|Sonnencreme",
        "crème visage|shampooing|rouge à lèvres|parfum|sérum|lait corporel|mascara|crème solaire",
        "crema facial|champú|pintalabios|perfume|sérum|loción corporal|rímel|protector solar",
    ),
    "electronics": (
        "headphones|smartphone|laptop|smartwatch|speaker|monitor|camera|tablet",
        "Kopfhörer|Smartphone|Laptop|Smartwatch|Lautsprecher|Monitor|Kamera|Tablet",
        "casque|smartphone|ordinateur portable|montre connectée|enceinte|écran|appareil photo|tablette",
        "auriculares|móvil|portátil|reloj inteligente|altavoz|monitor|cámara|tableta",
    ),
    "home": (
        "sofa|table lamp|duvet cover|coffee table|bookshelf|rug|frying pan|kettle",
        "Sofa|Tischlampe|Bettwäsche|Couchtisch|Bücherregal|Teppich|Bratpfanne|Wasserkocher",
        "canapé|lampe de chevet|housse de couette|table basse|bibliothèque|tapis|poêle|bouilloire",
        "sofá|lámpara de mesa|funda nórdica|mesa de centro|estantería|alfombra|sartén|hervidor",
    ),
    "grocery": (
        "olive oil|coffee beans|green tea|dark chocolate|pasta|honey|granola|rice",
        "Olivenöl|Kaffeebohnen|Grüntee|Zartbitterschokolade|Nudeln|Honig|Müsli|Reis",
        "huile d'olive|café en grains|thé vert|chocolat noir|pâtes|miel|granola|riz",
        "aceite de oliva|café en grano|té verde|chocolate negro|pasta|miel|granola|arroz",
    ),
    "automotive": (
        "car battery|wiper blades|motor oil|tyre|dash cam|car charger|roof box|floor mats",
        "Autobatterie|Scheibenwischer|Motoröl|Reifen|Dashcam|Autoladegerät|Dachbox|Fußmatten",
        "batterie auto|balais d'essuie-glace|huile moteur|pneu|"
        "caméra embarquée|chargeur voiture|coffre de toit|tapis de sol",
        "batería de coche|escobillas|aceite de motor|neumático|"
        "cámara para coche|cargador de coche|cofre de techo|alfombrillas",
    ),
    "sports": (
        "running shoes|yoga mat|tent|bicycle helmet|backpack|dumbbells|football|water bottle",
        "Laufschuhe|Yogamatte|Zelt|Fahrradhelm|Rucksack|Hanteln|Fußball|Trinkflasche",
        "chaussures de course|tapis de yoga|tente|casque de vélo|sac à dos|haltères|ballon de football|gourde",
        "zapatillas de running|esterilla de yoga|tienda de campaña|"
        "casco de bicicleta|mochila|mancuernas|balón de fútbol|botella de agua",
    ),
    "toys": (
        "building blocks|board game|puzzle|plush bear|toy car|doll house|kite|train set",
        "Bausteine|Brettspiel|Puzzle|Teddybär|Spielzeugauto|Puppenhaus|Drachen|Eisenbahn",
        "jeu de construction|jeu de société|puzzle|ours en peluche|"
        "petite voiture|maison de poupée|cerf-volant|circuit de train",
        "bloques de construcción|juego de mesa|rompecabezas|"
        "oso de peluche|coche de juguete|casa de muñecas|cometa|tren de juguete",
    ),
}
VARIANT_KIND = {"fashion": "size", "sports": "size"}  # others vary by colour only
SIZES = {"fashion": _w("XS|S|M|L|XL|XXL"), "sports": _w("36|38|40|42|44|46")}
COLOURS = {
    "en": _w("black|white|navy|red|green|grey|beige|blue|pink|olive"),
    "de": _w("schwarz|weiß|marineblau|rot|grün|grau|beige|blau|rosa|oliv"),
    "fr": _w("noir|blanc|bleu marine|rouge|vert|gris|beige|bleu|rose|olive"),
    "es": _w("negro|blanco|azul marino|rojo|verde|gris|beis|azul|rosa|oliva"),
}
ADJ = {
    "en": _w("lightweight|durable|elegant|compact|versatile|premium|classic|modern|practical|robust|soft|sleek"),
    "de": _w("leichte|robuste|elegante|kompakte|vielseitige|hochwertige|klassische|moderne|praktische|weiche"),
    "fr": _w("légère|robuste|élégante|compacte|polyvalente|haut de gamme|classique|moderne|pratique|douce"),
    "es": _w("ligera|resistente|elegante|compacta|versátil|prémium|clásica|moderna|práctica|suave"),
}
MATERIALS = {
    "en": _w("organic cotton|recycled polyester|stainless steel|solid oak|aluminium|natural rubber|glass|bamboo"),
    "de": _w("Bio-Baumwolle|recyceltem Polyester|Edelstahl|massiver Eiche|Aluminium|Naturkautschuk|Glas|Bambus"),
    "fr": _w(
        "coton biologique|polyester recyclé|acier inoxydable|chêne massif|aluminium|caoutchouc naturel|verre|bambou"
    ),
    "es": _w("algodón orgánico|poliéster reciclado|acero inoxidable|roble macizo|aluminio|caucho natural|vidrio|bambú"),
}
USES = {
    "en": _w(
        "daily commuting|weekend trips|the office|family dinners|long training sessions|"
        "rainy days|small apartments|gifts for friends|travel|cold winter mornings"
    ),
    "de": _w(
        "den täglichen Arbeitsweg|Wochenendausflüge|das Büro|Familienessen|"
        "lange Trainingseinheiten|Regentage|kleine Wohnungen|Geschenke|Reisen|kalte Wintermorgen"
    ),
    "fr": _w(
        "les trajets quotidiens|les week-ends|le bureau|les repas en famille|les longues séances|"
        "les jours de pluie|les petits appartements|les cadeaux|les voyages|les matins d'hiver"
    ),
    "es": _w(
        "el trayecto diario|las escapadas de fin de semana|la oficina|las cenas familiares|"
        "los entrenamientos largos|los días de lluvia|los pisos pequeños|los regalos|los viajes|las mañanas de invierno"
    ),
}
BRAND_PARTS = (
    _w("North|Blue|Silver|Urban|Alpine|Nova|Terra|Luma|Vista|Oak|Iron|Willow|Coral|Summit|Pixel"),
    _w("field|line|craft|works|wear|labs|home|gear|nest|peak|wave|forge|leaf|stone|ware"),
)
SPEC_KEYS = {
    "en": _w("Material|Colour|Weight|Dimensions|Model number|Warranty|Country of origin"),
    "de": _w("Material|Farbe|Gewicht|Abmessungen|Modellnummer|Garantie|Herkunftsland"),
    "fr": _w("Matière|Couleur|Poids|Dimensions|Référence|Garantie|Pays d'origine"),
    "es": _w("Material|Color|Peso|Dimensiones|Modelo|Garantía|País de origen"),
}
COUNTRIES = {
    "en": _w("Portugal|Germany|Italy|Vietnam|Spain|Poland"),
    "de": _w("Portugal|Deutschland|Italien|Vietnam|Spanien|Polen"),
    "fr": _w("Portugal|Allemagne|Italie|Vietnam|Espagne|Pologne"),
    "es": _w("Portugal|Alemania|Italia|Vietnam|España|Polonia"),
}

PRODUCT_SENTENCES = {
    "en": [
        "The {name} by {brand} is a {adj} {noun} made from {material}.",
        "Designed for {use}, this {noun} keeps its shape even after {n} months of regular use.",
        "Our customers love how {adj} it feels, and the {colour} finish goes with almost everything.",
        "Every {noun} from {brand} is checked by hand before it leaves our warehouse in {country}.",
        "Thanks to the {material}, it is easy to clean and stays {adj} for years.",
        "If you are looking for a {noun} for {use}, this model is one of our best sellers this season.",
        "The {adj} design was tested by {n} people over a full winter of {use}.",
        "Pair it with other {brand} products to get a consistent look in {colour}.",
        "Compared with the previous version, the new {noun} is {n} percent lighter and more {adj}.",
        "We recommend it for {use}, although many buyers also choose it for {use2}.",
        "The package includes the {noun}, a care guide and a {n}-year {brand} warranty card.",
        "Small details such as reinforced seams and a {adj} finish make a real difference for {use}.",
        "Order before noon and your {colour} {noun} ships the same day from {country}.",
        "Returns are free within {n} days, so you can try the {noun} at home without risk.",
    ],
    "de": [
        "Die {name} von {brand} ist eine {adj} {noun} aus {material}.",
        "Entwickelt für {use}, behält dieses Produkt auch nach {n} Monaten täglicher Nutzung seine Form.",
        "Unsere Kunden schätzen das {adj} Gefühl, und die Farbe {colour} passt zu fast allem.",
        "Jedes Produkt von {brand} wird vor dem Versand in unserem Lager in {country} von Hand geprüft.",
        "Dank {material} lässt es sich leicht reinigen und bleibt viele Jahre lang schön.",
        "Wenn Sie etwas für {use} suchen, gehört dieses Modell zu unseren Bestsellern der Saison.",
        "Das Design wurde von {n} Personen einen ganzen Winter lang für {use} getestet.",
        "Kombinieren Sie es mit anderen Produkten von {brand} für einen einheitlichen Look in {colour}.",
        "Im Vergleich zur Vorgängerversion ist das neue Modell {n} Prozent leichter und stabiler.",
        "Wir empfehlen es für {use}, viele Käufer nutzen es aber auch für {use2}.",
        "Im Lieferumfang sind eine Pflegeanleitung und eine Garantiekarte über {n} Jahre enthalten.",
        "Bestellen Sie vor zwölf Uhr, dann verschicken wir Ihre Bestellung noch am selben Tag.",
        "Die Rücksendung ist innerhalb von {n} Tagen kostenlos, so können Sie alles zu Hause ausprobieren.",
    ],
    "fr": [
        "La {name} de {brand} est une {noun} {adj} fabriquée en {material}.",
        "Conçue pour {use}, elle garde sa forme même après {n} mois d'utilisation régulière.",
        "Nos clients apprécient son toucher, et la couleur {colour} se marie avec presque tout.",
        "Chaque produit {brand} est vérifié à la main avant de quitter notre entrepôt en {country}.",
        "Grâce au {material}, elle se nettoie facilement et reste belle pendant des années.",
        "Si vous cherchez un article pour {use}, ce modèle fait partie de nos meilleures ventes de la saison.",
        "Le design a été testé par {n} personnes pendant tout un hiver pour {use}.",
        "Associez-la à d'autres produits {brand} pour un style cohérent en {colour}.",
        "Par rapport à la version précédente, le nouveau modèle est {n} pour cent plus léger.",
        "Nous la recommandons pour {use}, mais beaucoup de clients la choisissent aussi pour {use2}.",
        "Le colis contient un guide d'entretien et une carte de garantie de {n} ans.",
        "Commandez avant midi et votre colis part le jour même depuis notre entrepôt.",
        "Les retours sont gratuits pendant {n} jours, vous pouvez donc l'essayer chez vous sans risque.",
    ],
    "es": [
        "La {name} de {brand} es una {noun} {adj} fabricada en {material}.",
        "Diseñada para {use}, mantiene su forma incluso después de {n} meses de uso diario.",
        "A nuestros clientes les encanta su tacto, y el color {colour} combina con casi todo.",
        "Cada producto de {brand} se revisa a mano antes de salir de nuestro almacén en {country}.",
        "Gracias al {material}, es fácil de limpiar y se mantiene como nueva durante años.",
        "Si buscas algo para {use}, este modelo es uno de nuestros más vendidos de la temporada.",
        "El diseño fue probado por {n} personas durante todo un invierno para {use}.",
        "Combínala con otros productos de {brand} para conseguir un estilo coherente en {colour}.",
        "En comparación con la versión anterior, el nuevo modelo es un {n} por ciento más ligero.",
        "La recomendamos para {use}, aunque muchos compradores también la eligen para {use2}.",
        "El paquete incluye una guía de cuidado y una tarjeta de garantía de {n} años.",
        "Haz tu pedido antes del mediodía y lo enviamos el mismo día desde nuestro almacén.",
        "Las devoluciones son gratuitas durante {n} días, así que puedes probarla en casa sin riesgo.",
    ],
}
REVIEW_SENTENCES = {
    "en": _w(
        "Bought this for {use} and it has been great so far.|The {colour} colour looks exactly like the photos.|"
        "Delivery took {n} days, which was faster than expected.|Good value for the price, I would buy it again.|"
        "After {n} weeks it still looks new.|My partner liked it so much that we ordered a second one.|"
        "The fit is a bit small, so consider one size up.|Customer service answered my question within an hour.|"
        "Not perfect, but very solid for {use}.|It arrived well packed and without any scratches."
    ),
    "de": _w(
        "Für {use} gekauft und bisher sehr zufrieden.|Die Farbe {colour} sieht genau wie auf den Fotos aus.|"
        "Die Lieferung hat {n} Tage gedauert, schneller als erwartet.|"
        "Gutes Preis-Leistungs-Verhältnis, ich würde es wieder kaufen.|"
        "Nach {n} Wochen sieht es immer noch aus wie neu.|"
        "Der Kundendienst hat meine Frage innerhalb einer Stunde beantwortet.|"
        "Nicht perfekt, aber sehr solide für {use}.|Es kam gut verpackt und ohne Kratzer an."
    ),
    "fr": _w(
        "Acheté pour {use} et très satisfait jusqu'à présent.|La couleur {colour} est exactement comme sur les photos.|"
        "La livraison a pris {n} jours, plus rapide que prévu.|Bon rapport qualité prix, je le rachèterais.|"
        "Après {n} semaines, il est toujours comme neuf.|Le service client a répondu à ma question en une heure.|"
        "Pas parfait, mais très solide pour {use}.|Arrivé bien emballé et sans aucune rayure."
    ),
    "es": _w(
        "Lo compré para {use} y de momento estoy muy contento.|El color {colour} es igual que en las fotos.|"
        "El envío tardó {n} días, más rápido de lo esperado.|Buena relación calidad precio, lo volvería a comprar.|"
        "Después de {n} semanas sigue como nuevo.|El servicio de atención respondió a mi pregunta en una hora.|"
        "No es perfecto, pero muy sólido para {use}.|Llegó bien embalado y sin ningún arañazo."
    ),
}
FIRST_NAMES = _w("Anna|Ben|Clara|David|Elena|Felix|Grace|Hugo|Ines|Jonas|Kate|Luis|Marie|Noah|Olivia|Paul|Sofia|Tom")
LAST_INITIALS = _w("A.|B.|C.|D.|K.|L.|M.|R.|S.|W.")

# News sentences are composed of subject + verb phrase + object + tail; the parts multiply into many
# distinct sentences, so unrelated articles share few 5-grams.
NEWS_PARTS = {
    "en": (
        _w(
            "The city council of {city}|A spokesperson for {org}|Researchers at {org}|Local residents in {city}|"
            "The finance minister|Several union leaders|Officials in {city}|A report published by {org}|"
            "Opposition politicians|Teachers across the region"
        ),
        _w(
            "announced plans to|warned that it may|voted on {day} to|is expected to|has refused to|agreed to|"
            "promised once again to|decided after weeks of talks to|said it would try to|is still unable to"
        ),
        _w(
            "expand public transport|raise the budget for schools|review the new housing rules|cut energy costs|"
            "build a new hospital|delay the election|reduce traffic in the old town|invest in solar power|"
            "reform the pension system|support small businesses"
        ),
        _w(
            "by the end of the year.|despite strong criticism.|after a long debate.|within {n} months.|"
            "according to a statement on {day}.|as prices keep rising.|before the summer holidays.|"
            "with a budget of {n} million.|following a protest by {n} people.|to the surprise of many observers."
        ),
    ),
    "de": (
        _w(
            "Der Stadtrat von {city}|Ein Sprecher von {org}|Forscher der {org}|Anwohner in {city}|"
            "Der Finanzminister|Mehrere Gewerkschaften|Die Verwaltung in {city}|Ein Bericht der {org}|"
            "Die Opposition|Lehrerinnen und Lehrer in der Region"
        ),
        _w(
            "kündigte am {day} an,|warnte davor,|beschloss nach langen Gesprächen,|erklärte,|lehnte es ab,|"
            "versprach erneut,|plant offenbar,|hat sich bereit erklärt,|hofft weiterhin,|sieht keine Möglichkeit,"
        ),
        _w(
            "den Nahverkehr auszubauen|mehr Geld für Schulen bereitzustellen|die Regeln für Mieten zu prüfen|"
            "die Energiekosten zu senken|ein neues Krankenhaus zu bauen|die Wahl zu verschieben|"
            "den Verkehr in der Altstadt zu verringern|in Solarenergie zu investieren|die Rente zu reformieren|"
            "kleine Unternehmen zu unterstützen"
        ),
        _w(
            "bis zum Ende des Jahres.|trotz heftiger Kritik.|nach einer langen Debatte.|innerhalb von {n} Monaten.|"
            "wie am {day} mitgeteilt wurde.|weil die Preise weiter steigen.|noch vor den Sommerferien.|"
            "mit einem Budget von {n} Millionen Euro.|"
            "nach einem Protest von {n} Menschen.|zur Überraschung vieler Beobachter."
        ),
    ),
    "fr": (
        _w(
            "Le conseil municipal de {city}|Un porte-parole de {org}|Des chercheurs de {org}|Les habitants de {city}|"
            "Le ministre des finances|Plusieurs syndicats|La mairie de {city}|Un rapport publié par {org}|"
            "L'opposition|Les enseignants de la région"
        ),
        _w(
            "a annoncé {day} son intention de|a averti qu'il pourrait|a décidé après des semaines de discussions de|"
            "a promis une nouvelle fois de|a refusé de|a accepté de|"
            "prévoit de|espère toujours|n'est pas en mesure de|a proposé de"
        ),
        _w(
            "développer les transports publics|augmenter le budget des écoles|revoir les règles du logement|"
            "réduire les coûts de l'énergie|construire un nouvel hôpital|reporter les élections|"
            "limiter la circulation dans le centre historique|investir dans l'énergie solaire|réformer les retraites|"
            "soutenir les petites entreprises"
        ),
        _w(
            "d'ici la fin de l'année.|malgré de vives critiques.|après un long débat.|dans les {n} prochains mois.|"
            "selon un communiqué publié {day}.|alors que les prix continuent de grimper.|avant les vacances d'été.|"
            "avec un budget de {n} millions d'euros.|"
            "après une manifestation de {n} personnes.|à la surprise de nombreux observateurs."
        ),
    ),
    "es": (
        _w(
            "El ayuntamiento de {city}|Un portavoz de {org}|Investigadores de {org}|Los vecinos de {city}|"
            "El ministro de Hacienda|Varios sindicatos|Las autoridades de {city}|Un informe publicado por {org}|"
            "La oposición|Los profesores de la región"
        ),
        _w(
            "anunció el {day} su intención de|advirtió que podría|decidió tras semanas de negociaciones|"
            "prometió una vez más|se negó a|aceptó|tiene previsto|sigue esperando|no ha conseguido|propuso"
        ),
        _w(
            "ampliar el transporte público|aumentar el presupuesto de los colegios|revisar las normas de vivienda|"
            "reducir el coste de la energía|construir un nuevo hospital|aplazar las elecciones|"
            "reducir el tráfico en el casco antiguo|invertir en energía solar|reformar las pensiones|"
            "apoyar a las pequeñas empresas"
        ),
        _w(
            "antes de que termine el año.|a pesar de las duras críticas.|"
            "después de un largo debate.|en los próximos {n} meses.|"
            "según un comunicado del {day}.|mientras los precios siguen subiendo.|antes de las vacaciones de verano.|"
            "con un presupuesto de {n} millones de euros.|"
            "tras una protesta de {n} personas.|para sorpresa de muchos observadores."
        ),
    ),
}
CITIES = _w("Lyon|Hamburg|Valencia|Leeds|Porto|Graz|Bordeaux|Bilbao|Dresden|Cork|Nantes|Sevilla|Bremen|Bristol")
ORGS = _w(
    "Universität Leipzig|Instituto Nacional|Agence Centrale|the National Institute|Green Energy Forum|"
    "Chamber of Commerce|Technische Hochschule|Observatoire Régional"
)
DAYS = {
    "en": _w("Monday|Tuesday|Wednesday|Thursday|Friday"),
    "de": _w("Montag|Dienstag|Mittwoch|Donnerstag|Freitag"),
    "fr": _w("lundi|mardi|mercredi|jeudi|vendredi"),
    "es": _w("lunes|martes|miércoles|jueves|viernes"),
}

FORUM_PARTS = (
    _w(
        "Has anyone here tried|I finally managed to fix|Quick question about|I have been struggling with|"
        "Thanks for the tip about|Last week I upgraded|Can someone explain|I am not sure about|My experience with"
    ),
    _w(
        "the {thing} on my old {machine}|replacing the {thing} in a {machine}|the noisy {thing} of the {machine}|"
        "setting up the {thing} for my {machine}|the latest update for the {machine}|a second-hand {thing}"
    ),
    _w(
        "because the manual says nothing.|and it made a huge difference.|but the problem came back after {n} days.|"
        "so I am posting my notes here.|without spending more than {n} dollars.|and would love some feedback.|"
        "which took me about {n} hours.|after reading the whole thread twice."
    ),
)
FORUM_THINGS = _w("fan|hard drive|router|carburettor|graphics card|thermostat|chain|power supply|bootloader|pedal")
FORUM_MACHINES = _w("laptop|road bike|home server|camper van|espresso machine|Raspberry Pi|sewing machine|lawn mower")

DOC_PARTS = (
    _w(
        "The {fn} function|This configuration option|The {cls} class|Each worker process|The command line tool|"
        "The client library|A background job|The {fn} method"
    ),
    _w(
        "returns a list of|accepts an optional|reads the value of|writes a summary of|raises an error for|"
        "caches the result of|validates every|streams the content of"
    ),
    _w(
        "records from the {cls} table|settings in the project file|keys in the request header|"
        "files in the output directory|rows that match the filter|messages in the queue"
    ),
    _w(
        "before the connection is closed.|when the timeout expires.|if the path does not exist.|"
        "unless the flag is set to false.|in the order they were created.|and logs a warning on failure."
    ),
)
DOC_FNS = _w("load_config|parse_args|connect|flush_cache|read_batch|write_index|resolve_path|schedule_task")
DOC_CLASSES = _w("Session|Connection|TaskQueue|IndexWriter|Settings|Client|Worker|Pipeline")

RECIPE_DISHES = _w(
    "lemon chicken|vegetable curry|mushroom risotto|banana bread|tomato soup|beef stew|apple pie|lentil salad"
)
RECIPE_INGREDIENTS = _w(
    "2 cups of flour|1 onion, finely chopped|3 cloves of garlic|200 g of mushrooms|1 tablespoon of olive oil|"
    "a pinch of salt|2 eggs|400 ml of coconut milk|1 teaspoon of cumin|250 g of butter|3 ripe bananas|"
    "1 litre of vegetable stock|a handful of fresh parsley|150 g of brown sugar"
)
RECIPE_STEPS = (
    _w(
        "Heat the oil in a large pan|Preheat the oven to {n}0 degrees|"
        "Whisk the eggs with the sugar|Chop the vegetables|"
        "Melt the butter over low heat|Rinse the lentils under cold water|Fry the onion until golden"
    ),
    _w(
        "and add the garlic,|then stir in the flour,|and season with salt and pepper,|before adding the stock,|"
        "and mix in the spices,|then fold in the fruit,"
    ),
    _w(
        "cooking for about {n} minutes.|stirring every few minutes.|until the sauce thickens.|"
        "until a knife comes out clean.|and let it rest for {n} minutes.|and serve with fresh bread."
    ),
)

RECIPE_INTRO = (
    _w(
        "My grandmother used to make this {dish}|We cooked this {dish}|"
        "You can make this simple {dish}|Our readers keep asking about this {dish}|"
        "I first tasted this {dish}|Nothing beats a warm {dish}"
    ),
    _w(
        "on cold Sunday evenings|for a crowd of {n} people|during a holiday in the mountains|after a long day at work|"
        "with ingredients from the local market|in less than an hour"
    ),
    _w(
        "and it never lasts long.|and the kids love it.|so I finally wrote it down.|and it freezes well.|"
        "and you can easily double the quantities.|without any special equipment."
    ),
)
JUNK_SPAM = _w("cheap|buy|best|free|discount|casino|replica|pills|loans|sale|online|now|click|win|bonus")
LOREM = _w("lorem|ipsum|dolor|sit|amet|consectetur|adipiscing|elit|sed|do|eiusmod|tempor|incididunt|labore")


@dataclass
class Para:
    """An editable block of visible text inside `<main>` (near-duplicates edit its words)."""

    tag: str
    text: str
    attrs: str = ""

    def html(self) -> str:
        return f"<{self.tag}{self.attrs}>{escape(self.text, quote=False)}</{self.tag}>"


@dataclass
class Site:
    """The boilerplate a page inherits from its site: name, domain, nav labels."""

    name: str
    domain: str
    nav: list[str]
    kind: str


@dataclass
class PageDraft:
    """A page before rendering; `main` mixes raw HTML fragments and editable `Para` blocks."""

    site: Site
    path: str
    lang: str | None
    label: str
    page_type: str
    title: str
    main: list[str | Para]
    category: str | None = None
    head: str = ""
    markup: str | None = None
    product: dict | None = None
    junk_kind: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{self.site.domain}{self.path}"

    def with_site(self, site: Site) -> PageDraft:
        return replace(self, site=site)


def _fill(template: str, rng: random.Random, slots: dict[str, list[str]]) -> str:
    values = {key: rng.choice(options) for key, options in slots.items() if "{" + key + "}" in template}
    return template.format(n=rng.randint(2, 60), **values)


def _compose(rng: random.Random, parts: tuple[list[str], ...], slots: dict[str, list[str]]) -> str:
    return _fill(" ".join(rng.choice(p) for p in parts), rng, slots)


@functools.lru_cache(maxsize=4096)
def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def make_site(rng: random.Random, kind: str, lang: str) -> Site:
    """A site of a kind (shop, news, forum, docs, recipes, junk) with its own name and domain."""
    first, second = rng.choice(BRAND_PARTS[0]), rng.choice(BRAND_PARTS[1])
    suffix = {
        "shop": _w("store|shop|market|outlet"),
        "news": _w("times|post|herald|daily"),
        "forum": _w("forum|community|talk"),
        "docs": _w("docs|dev|reference"),
        "recipes": _w("kitchen|recipes|cooking"),
        "junk": _w("deals|xyz|best"),
    }[kind]
    name = f"{first}{second} {rng.choice(suffix).title()}"
    domain = f"{_slug(name)}-{rng.randint(1, 999)}.{TLD[lang] if kind != 'junk' else 'biz'}"
    ui = UI[lang]
    nav = {
        "shop": CATEGORY_NAMES[lang][:6],
        "news": ui["sections"],
        "forum": _w("Forums|New posts|Members|Rules|Search"),
        "docs": _w("Guide|Tutorials|API reference|Changelog|FAQ"),
        "recipes": _w("Breakfast|Dinner|Desserts|Vegetarian|Quick meals"),
        "junk": _w("Home|Deals|Win"),
    }[kind]
    return Site(name=name, domain=domain, nav=nav, kind=kind)


def _gtin13(rng: random.Random) -> str:
    digits = [rng.randint(0, 9) for _ in range(12)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def _price_text(price: float, lang: str) -> str:
    return f"${price:,.2f}" if lang == "en" else f"{price:.2f}".replace(".", ",") + " €"


def _noun(category: str, lang: str, rng: random.Random) -> str:
    return rng.choice(NOUNS[category][LANGS.index(lang)].split("|"))


def build_product(
    rng: random.Random, site: Site, lang: str, category: str, colour_index: int | None = None
) -> PageDraft:
    """A product page: breadcrumbs, name, price, variants, description, specs, reviews, markup.

    `colour_index` overrides the drawn colour after all random draws, so a templated variant of a product
    is the same page with another colour (and its own SKU and GTIN).
    """
    ui, cat_name = UI[lang], CATEGORY_NAMES[lang][CATEGORIES.index(category)]
    noun, adj = _noun(category, lang, rng), rng.choice(ADJ[lang])
    brand = rng.choice(BRAND_PARTS[0]) + rng.choice(BRAND_PARTS[1])
    model = f"{rng.choice(_w('Air|Pro|Max|Lite|Flex|Go|One|Edge'))} {rng.randint(2, 900)}"
    drawn_colour = rng.randrange(len(COLOURS[lang]))
    price = round(rng.uniform(4, 400), 0) - 0.01
    sku, gtin = f"{brand[:3].upper()}-{rng.randint(10000, 99999)}", _gtin13(rng)
    markup = rng.choices(["jsonld", "microdata", None], weights=[6, 3, 1])[0]
    sentences = rng.sample(PRODUCT_SENTENCES[lang], k=min(11, len(PRODUCT_SENTENCES[lang])))
    spec_values = [
        rng.choice(MATERIALS[lang]),
        "",
        f"{rng.randint(1, 40) * 50} g",
        f"{rng.randint(10, 90)} x {rng.randint(10, 90)} x {rng.randint(2, 40)} cm",
        f"{brand[:2].upper()}{rng.randint(1000, 9999)}",
        f"{rng.randint(1, 5)}",
        rng.choice(COUNTRIES[lang]),
    ]
    reviews = [
        (
            rng.choice(FIRST_NAMES) + " " + rng.choice(LAST_INITIALS),
            rng.randint(3, 5),
            rng.sample(REVIEW_SENTENCES[lang], k=3),
        )
        for _ in range(rng.randint(2, 4))
    ]
    uses = rng.sample(USES[lang], k=2)
    if colour_index is not None:
        sku, gtin = f"{sku}-{colour_index}", _gtin13(random.Random(f"{gtin}:{colour_index}"))
    colour = COLOURS[lang][drawn_colour if colour_index is None else colour_index]
    name = f"{brand} {model} {noun} {colour}"
    slots = {
        "name": [name],
        "brand": [brand],
        "adj": [adj],
        "noun": [noun],
        "material": [spec_values[0]],
        "use": [uses[0]],
        "use2": [uses[1]],
        "colour": [colour],
        "country": [spec_values[6]],
    }
    text = [_fill(s, rng, slots) for s in sentences]
    spec_values[1] = colour
    product = {"name": name, "brand": brand, "price": price, "currency": CURRENCY[lang], "sku": sku, "gtin": gtin}

    item = ' itemscope itemtype="https://schema.org/Product"' if markup == "microdata" else ""
    prop = (lambda p: f' itemprop="{p}"') if markup == "microdata" else (lambda p: "")
    variant_kind = VARIANT_KIND.get(category, "colour")
    options = SIZES[category] if variant_kind == "size" else COLOURS[lang][:5]
    main: list[str | Para] = [
        f'<nav class="breadcrumb"><a href="/">{ui["home"]}</a> › <a href="/c/{category}">{escape(cat_name)}</a> › '
        f"{escape(noun)}</nav>",
        f'<div class="product"{item}>',
        Para("h1", name, prop("name")),
        f'<p class="brand">{ui["brand"]}: <span{prop("brand")}>{escape(brand)}</span> · SKU '
        f"<span{prop('sku')}>{sku}</span></p>",
    ]
    if markup == "microdata":
        main.append(f'<meta itemprop="gtin13" content="{gtin}">')
        main.append(
            '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
            f'<meta itemprop="price" content="{price:.2f}"><meta itemprop="priceCurrency" '
            f'content="{CURRENCY[lang]}"><link itemprop="availability" href="https://schema.org/InStock">'
        )
    main.append(f'<p class="price">{_price_text(price, lang)}</p><p class="stock">{ui["stock"]} · {ui["ships"]}</p>')
    if markup == "microdata":
        main.append("</div>")
    label = ui["size"] if variant_kind == "size" else ui["colour"]
    main.append(
        f'<form class="variants"><label>{label} <select>'
        + "".join(f"<option>{escape(o)}</option>" for o in options)
        + f'</select></label><label>{ui["qty"]} <input type="number" value="1"></label>'
        f'<button class="add-to-cart">{ui["add"]}</button></form>'
    )
    main.append(f"<h2>{ui['desc']}</h2>")
    main += [
        Para("p", " ".join(text[i : i + 4]), prop("description") if i == 0 else "") for i in range(0, len(text), 4)
    ]
    main.append(
        f'<h2>{ui["specs"]}</h2><table class="specs">'
        + "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
            for k, v in zip(SPEC_KEYS[lang], spec_values, strict=True)
        )
        + "</table>"
    )
    main.append(f"<h2>{ui['reviews']}</h2>")
    for author, stars, said in reviews:
        main.append(
            f'<div class="review"><p class="author">{escape(author)} · {stars} {ui["stars"]} · {ui["verified"]}</p>'
        )
        main.append(Para("p", " ".join(_fill(s, rng, slots) for s in said)))
        main.append("</div>")
    main.append("</div>")
    head = ""
    if markup == "jsonld":
        ld = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": name,
            "brand": {"@type": "Brand", "name": brand},
            "sku": sku,
            "gtin13": gtin,
            "description": text[0],
            "color": colour,
            "offers": {
                "@type": "Offer",
                "price": f"{price:.2f}",
                "priceCurrency": CURRENCY[lang],
                "availability": "https://schema.org/InStock",
            },
            "aggregateRating": {
                "@type": "AggregateRating",
                "ratingValue": round(sum(r[1] for r in reviews) / len(reviews), 1),
                "reviewCount": len(reviews),
            },
        }
        head = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    path = f"/p/{_slug(name)}-{sku.lower()}"
    return PageDraft(
        site, path, lang, "ecommerce", "product", f"{name} | {site.name}", main, category, head, markup, product
    )


def build_category(rng: random.Random, site: Site, lang: str, category: str) -> PageDraft:
    """A category (collection) page: filters, a product grid with names and prices, pagination."""
    ui, cat_name = UI[lang], CATEGORY_NAMES[lang][CATEGORIES.index(category)]
    count = rng.randint(12, 24)
    items = []
    for _ in range(count):
        brand = rng.choice(BRAND_PARTS[0]) + rng.choice(BRAND_PARTS[1])
        items.append(
            (
                f"{brand} {_noun(category, lang, rng)} {rng.choice(COLOURS[lang])} {rng.randint(2, 900)}",
                round(rng.uniform(4, 400), 0) - 0.01,
                brand,
            )
        )
    intro = " ".join(
        _fill(
            s,
            rng,
            {
                "name": [cat_name],
                "brand": [items[0][2]],
                "adj": ADJ[lang],
                "noun": [_noun(category, lang, rng)],
                "material": MATERIALS[lang],
                "use": USES[lang],
                "use2": USES[lang],
                "colour": COLOURS[lang],
                "country": COUNTRIES[lang],
            },
        )
        for s in rng.sample(PRODUCT_SENTENCES[lang], k=3)
    )
    brands = sorted({b for _, _, b in items})[:6]
    main: list[str | Para] = [
        f'<nav class="breadcrumb"><a href="/">{ui["home"]}</a> › {escape(cat_name)}</nav>',
        Para("h1", f"{cat_name} · {items[0][2]} & {items[1][2]}"),
        Para("p", intro, ' class="intro"'),
        f'<aside class="filters"><h2>{ui["filters"]}</h2><h3>{ui["brand"]}</h3><ul>'
        + "".join(f'<li><input type="checkbox"> {escape(b)}</li>' for b in brands)
        + f"</ul><h3>{ui['price']}</h3><ul><li>0 – 50</li><li>50 – 100</li>"
        + "<li>100 – 250</li><li>250+</li></ul></aside>",
        f'<p class="count">{count} {ui["results"]} · {ui["sort"]}: {ui["price"]}</p><ul class="product-grid">',
    ]
    for name, price, _ in items:
        main.append(
            f'<li class="product-card"><a href="/p/{_slug(name)}">{escape(name)}</a>\n'
            f'<span class="price">{_price_text(price, lang)}</span><button>{ui["add"]}</button></li>'
        )
    main.append(f'</ul><a class="next" href="?page=2">{ui["next"]}</a>')
    head, markup = "", None
    if rng.random() < 0.2:
        markup = "jsonld"
        ld = {
            "@context": "https://schema.org",
            "@type": "ItemList",
            "itemListElement": [
                {
                    "@type": "ListItem",
                    "position": i + 1,
                    "item": {
                        "@type": "Product",
                        "name": n,
                        "offers": {"@type": "Offer", "price": f"{p:.2f}", "priceCurrency": CURRENCY[lang]},
                    },
                }
                for i, (n, p, _) in enumerate(items)
            ],
        }
        head = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    path = f"/c/{category}/{_slug(items[0][2])}-{rng.randint(1, 9999)}"
    return PageDraft(
        site, path, lang, "ecommerce", "category", f"{cat_name} | {site.name}", main, category, head, markup
    )


def _paragraphs(rng: random.Random, make, count: int, per: tuple[int, int]) -> list[Para]:
    return [Para("p", " ".join(make() for _ in range(rng.randint(*per)))) for _ in range(count)]


def build_news(rng: random.Random, site: Site, lang: str) -> PageDraft:
    """A news article: headline, byline, 5-8 paragraphs of composed sentences, NewsArticle JSON-LD."""
    ui = UI[lang]
    slots = {"city": CITIES, "org": ORGS, "day": DAYS[lang]}
    make = lambda: _compose(rng, NEWS_PARTS[lang], slots)  # noqa: E731
    headline = make().rstrip(".")
    author = f"{rng.choice(FIRST_NAMES)} {rng.choice(_w('Keller|Martin|García|Dubois|Schmidt|Walsh|López|Bernard'))}"
    main: list[str | Para] = [
        Para("h1", headline),
        f'<p class="byline">{ui["by"]} {escape(author)} · 2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}</p>',
    ]
    main += _paragraphs(rng, make, rng.randint(5, 8), (3, 5))
    ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": headline, "author": author}
    head = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    return PageDraft(
        site,
        f"/{_slug(rng.choice(ui['sections']))}/{_slug(headline)[:60]}",
        lang,
        "non_ecommerce",
        "news",
        headline,
        main,
        head=head,
    )


def build_forum(rng: random.Random, site: Site) -> PageDraft:
    """A forum thread: a title and 3-7 posts by different users (English)."""
    slots = {"thing": FORUM_THINGS, "machine": FORUM_MACHINES}
    make = lambda: _compose(rng, FORUM_PARTS, slots)  # noqa: E731
    title = make().rstrip(".")
    main: list[str | Para] = [Para("h1", title)]
    for post in range(rng.randint(3, 7)):
        user = f"{rng.choice(FIRST_NAMES).lower()}_{rng.randint(1, 99)}"
        main.append(f'<article class="post"><p class="meta">{user} · {rng.randint(3, 900)} posts · #{post + 1}</p>')
        main += _paragraphs(rng, make, rng.randint(1, 2), (2, 4))
        main.append('<button class="reply">Reply</button></article>')
    return PageDraft(
        site, f"/threads/{_slug(title)[:50]}.{rng.randint(1000, 99999)}", "en", "non_ecommerce", "forum", title, main
    )


def build_documentation(rng: random.Random, site: Site) -> PageDraft:
    """A documentation page: headings, explanatory paragraphs, code samples (English)."""
    slots = {"fn": DOC_FNS, "cls": DOC_CLASSES}
    make = lambda: _compose(rng, DOC_PARTS, slots)  # noqa: E731
    fn, cls = rng.choice(DOC_FNS), rng.choice(DOC_CLASSES)
    main: list[str | Para] = [Para("h1", f"{cls}.{fn} reference")]
    for section in rng.sample(_w("Overview|Parameters|Return value|Errors|Examples|Notes|Performance"), k=4):
        main.append(f"<h2>{section}</h2>")
        main += _paragraphs(rng, make, rng.randint(1, 2), (2, 4))
        if rng.random() < 0.5:
            main.append(
                f"<pre><code>client = {cls}(timeout={rng.randint(1, 60)})\n"
                f"result = client.{fn}(&quot;{rng.choice(FORUM_THINGS)}&quot;)</code></pre>"
            )
    return PageDraft(
        site,
        f"/reference/{cls.lower()}/{fn}-{rng.randint(1, 999)}",
        "en",
        "non_ecommerce",
        "documentation",
        f"{cls}.{fn}",
        main,
    )


def build_recipe(rng: random.Random, site: Site) -> PageDraft:
    """A recipe: title, introduction, ingredient list, method steps, Recipe JSON-LD (English)."""
    dish = f"{rng.choice(_w('Easy|Classic|Quick|Grandma’s|Spicy|Creamy|Rustic'))} {rng.choice(RECIPE_DISHES)}"
    make = lambda: _compose(rng, RECIPE_STEPS, {})  # noqa: E731
    intro = " ".join(_compose(rng, RECIPE_INTRO, {"dish": [dish.lower()]}) for _ in range(rng.randint(2, 4)))
    ingredients = rng.sample(RECIPE_INGREDIENTS, k=rng.randint(5, 9))
    main: list[str | Para] = [
        Para("h1", dish),
        Para("p", intro),
        "<h2>Ingredients</h2><ul>" + "".join(f"<li>{escape(i)}</li>" for i in ingredients) + "</ul>",
        "<h2>Method</h2><ol>",
    ]
    main += [Para("li", make()) for _ in range(rng.randint(5, 9))]
    main.append("</ol>")
    ld = {"@context": "https://schema.org", "@type": "Recipe", "name": dish, "recipeIngredient": ingredients}
    head = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    return PageDraft(
        site, f"/recipes/{_slug(dish)}-{rng.randint(1, 9999)}", "en", "non_ecommerce", "recipe", dish, main, head=head
    )


def build_junk(rng: random.Random, site: Site) -> PageDraft:
    """A page quality filters should drop: very short, keyword spam, lorem-like repetition, or symbols."""
    kind = rng.choice(["short", "spam", "lorem", "symbols"])
    if kind == "short":
        text, lang = rng.choice(_w("Coming soon.|This domain is for sale.|Page not found.|Under construction")), "en"
    elif kind == "spam":
        words = rng.sample(JUNK_SPAM, k=5)
        text, lang = " ".join(rng.choice(words) for _ in range(rng.randint(150, 300))), "en"
    elif kind == "lorem":
        text, lang = " ".join(LOREM[i % 7] for i in range(rng.randint(150, 300))), None
    else:
        text = "".join(rng.choice("#$%&*+=<>|~^@!?0123456789 ") for _ in range(rng.randint(300, 900)))
        lang = None
    return PageDraft(
        site,
        f"/{rng.choice(JUNK_SPAM)}-{rng.randint(1, 99999)}",
        lang,
        "junk",
        "junk",
        text[:40],
        [Para("p", text)],
        junk_kind=kind,
    )


def render_main(page: PageDraft) -> str:
    """The inner HTML of the page's `<main>` element."""
    return "\n".join(part if isinstance(part, str) else part.html() for part in page.main)


def render_html(page: PageDraft) -> str:
    """The full HTML document: head, cookie banner, header and nav, `<main>`, newsletter box, footer."""
    lang = page.lang or "en"
    ui, site = UI[lang], page.site
    main = render_main(page)
    if page.page_type == "junk":
        return (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(page.title)}</title></head>\n'
            f"<body>\n<main>\n{main}\n</main>\n</body></html>\n"
        )
    nav = "".join(f'<li><a href="/{_slug(n)}">{escape(n)}</a></li>' for n in site.nav)
    footer = "".join(f'<li><a href="/{_slug(n)}">{escape(n)}</a></li>' for n in ui["footer"])
    shop = site.kind == "shop"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(page.title)}</title>\n'
        f'<link rel="canonical" href="{escape(page.url)}">\n{page.head}\n'
        "<style>.cookie-banner{position:fixed;bottom:0}</style>\n</head>\n<body>\n"
        f'<div class="cookie-banner" id="cookie-consent"><p>{ui["cookie"]}</p><button>{ui["accept"]}</button>'
        f"<button>{ui['settings']}</button></div>\n"
        f'<header class="site-header"><a class="logo" href="/">{escape(site.name)}</a>\n'
        f'<nav class="main-nav"><ul>{nav}</ul></nav>\n'
        f'<form class="search" action="/search"><input type="search" name="q" placeholder="{ui["search"]}"></form>'
        + (f'<a class="cart" href="/cart">{ui["cart"]} (0)</a>' if shop else "")
        + f'</header>\n<main id="content">\n{main}\n</main>\n'
        f'<aside class="newsletter"><p>{ui["news"]}</p><input type="email"><button>{ui["subscribe"]}</button></aside>\n'
        f'<footer class="site-footer"><ul>{footer}</ul><p>© 2026 {escape(site.name)}. {ui["rights"]}</p></footer>\n'
        "</body>\n</html>\n"
    )
