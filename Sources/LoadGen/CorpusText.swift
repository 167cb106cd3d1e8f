// The English text the workloads are built from: written for this project (original prose,
// no third-party text), kept as Swift constants so that no resource bundle is needed.

extension Corpus {
    /// Encyclopedia-style paragraphs, one topic each; documents, chat background and agent
    /// observations are cut from them sentence by sentence.
    static let paragraphs: [(topic: String, text: String)] = [
        ("lighthouses", "Lighthouses were once tended by keepers who lived beside the lamp for months at a time. A keeper trimmed the wick, polished the lens and wound the clockwork that turned the light, so that each station flashed its own pattern. Sailors learned those patterns by heart, because a light seen on a dark night told them not only that land was near but which headland they were looking at. Most towers are automatic now, yet many still carry the original glass."),
        ("sourdough bread", "Sourdough bread rises without packaged yeast. The baker keeps a starter, a paste of flour and water in which wild yeasts and lactic bacteria live together, and feeds it every day. When the dough is mixed, a spoonful of starter is enough to leaven a whole loaf, although the rise takes many hours. The bacteria produce the mild sourness that gives the bread its name, and the slow fermentation also makes the crust darker and the crumb more open."),
        ("river floodplains", "A river does not stay inside its channel. In wet seasons it spreads across the flat land beside it, the floodplain, and leaves behind a thin layer of silt. Over centuries these layers build some of the most fertile soil on earth, which is why so many early farming villages grew up on floodplains. The same floods that feed the fields can also destroy houses, so communities have always had to balance the benefit of the water against its danger."),
        ("pollinating insects", "Many flowering plants depend on insects to carry pollen from one blossom to the next. Bees are the best known, but hoverflies, moths, beetles and butterflies do a share of the work as well. A flower advertises itself with colour, scent and nectar, and the visiting insect brushes against the pollen while it feeds. Farmers who grow apples, almonds or berries often bring hives into their orchards during the few weeks when the trees are in bloom."),
        ("railway timetables", "Before railways, each town kept its own time, set by the sun at noon. A train that ran from east to west therefore left one clock and arrived by another, which made printed timetables confusing and sometimes dangerous. Railway companies solved the problem by agreeing on a single standard time for the whole line, and governments later adopted the idea for entire countries. The time zones used today grew directly out of that practical need."),
        ("glaciers", "A glacier is a river of ice that moves under its own weight. Snow that survives the summer is buried by the next winter's snow and slowly pressed into dense blue ice. Once the ice is thick enough it begins to flow downhill, carving the valley into a broad U shape and carrying rocks far from where they started. When a glacier retreats it leaves those rocks behind, together with ridges of gravel that show how far the ice once reached."),
        ("paper making", "Paper is made from fibres that are beaten in water until they separate and then caught on a fine screen. As the water drains away, the fibres lock together into a thin mat, which is pressed and dried into a sheet. For a long time the fibres came from old rags of cotton and linen, and paper mills paid collectors to gather them. Wood pulp replaced rags in the nineteenth century and made paper cheap enough for daily newspapers."),
        ("suspension bridges", "A suspension bridge hangs its deck from two great cables that pass over tall towers and are anchored in the ground at each end. The cables carry the weight in tension, which steel handles very well, so the bridge can span a much wider gap than a beam could. Engineers learned through painful failures that a long, light deck can twist in the wind, and modern designs add stiffening trusses or shaped decks that let the air pass smoothly."),
        ("library catalogues", "A library is only as useful as its catalogue. Early catalogues were handwritten lists, later replaced by drawers of cards that could be filed in several orders at once: by author, by title and by subject. Each card carried a call number that told the reader where the book stood on the shelves. Computer catalogues kept the same ideas but allowed a reader to search every field at once and to see whether a copy was already on loan."),
        ("weather forecasting", "Weather forecasting began with careful observation. Volunteers recorded temperature, pressure and wind at the same hour every day and sent the figures by telegraph to a central office, where the readings were drawn on a map. Forecasters looked for patterns in those maps and learned, for example, that falling pressure often meant rain was coming. Today the same measurements feed computer models that divide the atmosphere into small boxes and calculate how each one will change."),
        ("coffee growing", "Coffee grows best on shaded hillsides in the tropics, where the days are warm and the nights are cool. The plant produces small red fruits, usually called cherries, each holding two seeds that become the beans. Pickers on small farms choose only the ripe cherries, returning to the same bush several times during the season. After picking, the seeds are cleaned, dried in the sun and shipped green, and the roasting that gives them their flavour happens close to where they are sold."),
        ("salt marshes", "Salt marshes form along sheltered coasts where the tide comes in gently twice a day. Grasses that tolerate salt trap the mud carried by the water, and the marsh slowly rises until only the highest tides cover it. The maze of creeks is a nursery for young fish and a feeding ground for wading birds. Marshes also soften the force of storm waves, which has led several coastal towns to restore marshes that were drained long ago."),
        ("the printing press", "The printing press with movable type changed how knowledge travelled. Instead of copying a book by hand, a printer set individual metal letters in a frame, inked them and pressed paper against them, and could then print hundreds of identical pages. Books became cheaper and more common, spelling became more uniform, and a scholar in one city could read exactly the same text as a scholar in another. Pamphlets and newspapers soon followed the books."),
        ("mechanical clocks", "A mechanical clock keeps time by letting a stored force escape in small, equal steps. The force may come from a falling weight or a wound spring, and the escapement releases it one tooth at a time while a pendulum or balance wheel sets the rhythm. The better the pendulum, the steadier the clock, which is why makers took great care over its length and the temperature of the room. Accurate clocks later made it possible to find longitude at sea."),
        ("urban trees", "Trees in a city do more than decorate the streets. Their shade can lower the temperature of the pavement on a summer afternoon by many degrees, and their roots help the soil absorb heavy rain instead of sending it straight into the drains. Street trees face hard conditions, with little room for roots, salt from winter roads and frequent damage, so city foresters choose tough species and plant a mix of them so that one disease cannot remove them all."),
        ("ocean tides", "Tides rise and fall because the moon and, to a lesser degree, the sun pull on the oceans. The pull is strongest on the side of the earth facing the moon, and a second bulge forms on the far side, so most coasts see two high tides a day. When the sun and moon line up, the tides are larger than usual; when they pull at right angles, the range is smaller. The shape of a bay can greatly amplify the effect."),
        ("volcanoes", "A volcano is an opening through which molten rock from deep below reaches the surface. Some volcanoes release runny lava that flows for miles and builds broad, gentle slopes. Others hold thick, sticky magma full of gas, and they erupt explosively, throwing ash high into the sky. Scientists watch for small earthquakes, swelling of the ground and changes in the gases escaping from vents, because these signs often appear days or weeks before an eruption."),
        ("composting", "Composting turns kitchen scraps and garden waste into a dark, crumbly material that enriches soil. The work is done by bacteria, fungi and small animals such as worms, which need air, moisture and a balance between green material like grass clippings and brown material like dry leaves. A well kept heap warms up noticeably in its centre as the microbes feed. Turning the heap every few weeks lets in fresh air and speeds up the process."),
        ("bicycles", "The bicycle took several decades to reach its familiar shape. Early machines had no pedals at all, and riders pushed them along with their feet. Later designs put the pedals on a huge front wheel, which was fast but easy to fall from. The safety bicycle, with two wheels of equal size and a chain driving the rear one, finally made cycling practical for ordinary people, and air filled tyres soon made it comfortable as well."),
        ("telescopes", "A telescope gathers light and brings it to a focus, so that faint and distant objects can be seen clearly. The first telescopes used glass lenses, but large lenses are heavy and bend the colours of light by different amounts. Curved mirrors avoid both problems, which is why the largest telescopes are reflectors. Astronomers also build telescopes on mountains or send them into space, above the moving air that makes stars appear to twinkle."),
        ("mapmaking", "Every flat map of the round earth distorts something. A map can keep the shapes of small areas correct, or their sizes, or the directions between places, but it cannot do all three at once. Navigators preferred maps on which a straight line showed a constant compass heading, even though those maps made lands near the poles look far larger than they are. Mapmakers today choose a projection to suit the purpose of each map."),
        ("natural dyes", "Before synthetic dyes, cloth was coloured with plants, insects and minerals. Roots of madder gave red, the leaves of woad and indigo gave blue, and weld gave a bright yellow. Most natural dyes need a mordant, often a metal salt, to bind the colour to the fibre and keep it from washing out. Dyers guarded their recipes closely, since a reliable deep colour could make the reputation of a whole town."),
        ("bird migration", "Each autumn billions of birds leave their breeding grounds and fly toward warmer regions where food is easier to find. Some small songbirds travel thousands of miles, often at night, resting and feeding for a few days at favoured stopping places along the way. Birds find their route using the position of the sun, the patterns of the stars and the earth's magnetic field, and young birds on their first journey seem to inherit much of this knowledge."),
        ("wind power", "A wind turbine turns the motion of the air into electricity. The blades are shaped like the wings of an aircraft, so the wind creates lift that spins the rotor, and a generator in the housing at the top converts that rotation into current. Because the energy in the wind rises steeply with its speed, turbines are placed on ridges, open plains and at sea, where the wind is strong and steady. Taller towers reach faster, smoother air."),
        ("drinking water treatment", "Water from rivers and lakes passes through several stages before it reaches a kitchen tap. First a chemical is added that makes fine particles clump together, and the clumps settle to the bottom of large tanks. The clearer water then flows through beds of sand and gravel that catch what remains. Finally a disinfectant kills the microbes that could cause disease, and a small amount is left in the water to keep it safe in the pipes."),
        ("chess", "Chess is played on a board of sixty four squares by two players who each command sixteen pieces. Every piece moves in its own way, and the aim is to trap the opposing king so that it cannot escape capture. Players study openings, the first moves of a game, and endings, when only a few pieces remain, because both follow patterns that can be learned. The middle of the game is where planning and calculation matter most."),
        ("cheese making", "Cheese begins with milk that is soured by bacteria and then curdled with rennet, which separates it into solid curds and liquid whey. The curds are cut, stirred, drained and pressed into moulds. What happens next decides the character of the cheese: some are eaten fresh within days, while others are salted and left to age in cool cellars for months or years, where moulds and bacteria slowly develop their flavour and texture."),
        ("mosses", "Mosses are small plants without roots, flowers or seeds. They take up water through their whole surface and can dry out completely, then recover within minutes when rain returns. Because they need so little soil, mosses are often the first plants to grow on bare rock, and over time they help to build the soil in which larger plants can take hold. In cool, wet forests they cover the ground like a thick green carpet."),
        ("postal services", "A letter posted in one town and delivered in another passes through many hands. Collectors empty the boxes, sorters arrange the letters by destination, and carriers bring them to the right door. Postage stamps, introduced in the nineteenth century, meant that the sender paid in advance at a fixed rate instead of the receiver paying by distance. Postal codes came later, so that machines and people could sort the growing flood of mail faster."),
        ("solar cells", "A solar cell is a thin slice of a material, usually silicon, treated so that light falling on it pushes electrons into motion. Metal contacts on the front and back collect those electrons as an electric current. A single cell produces only a small voltage, so many cells are wired together into a panel, and many panels into an array. Panels work best when they face the sun directly and stay cool and clean."),
        ("shipping containers", "The standard shipping container transformed world trade. Before it, dock workers loaded ships one sack, crate and barrel at a time, and a vessel could spend days in port. A container is packed at the factory, sealed, carried by truck or train to the harbour and lifted onto the ship by a crane in minutes. Because every container has the same corner fittings, the same cranes, ships and trucks can handle them anywhere."),
        ("olive harvests", "Olive trees can live for many centuries and still bear fruit. The harvest comes in late autumn, when families and hired pickers spread nets under the trees and comb the branches by hand or with small rakes. Olives for oil are taken to the press quickly, because fruit that waits too long gives oil with a harsh taste. The first pressing of healthy fruit yields the finest oil, green and slightly peppery."),
        ("limestone caves", "Limestone caves are carved by water. Rain picks up a little carbon dioxide from the air and soil, becoming a weak acid that slowly dissolves the rock along cracks and layers. Over thousands of years the cracks widen into passages and chambers. Where water drips from the ceiling, it leaves behind a trace of mineral, and drop by drop these traces build the hanging stalactites and the rising stalagmites that make caves so striking."),
        ("tuning an orchestra", "Before a concert the oboe plays a single long note, and the rest of the orchestra tunes to it. The oboe is chosen because its sound is clear and penetrating and because its pitch is hard to adjust, so it is easier for the other players to match it than the other way round. String players tighten or loosen their strings, while wind players slide parts of their instruments in or out until the notes agree."),
        ("canal locks", "A canal lock lets boats climb or descend a hill. It is a chamber with gates at each end. To go up, a boat enters the lower end, the gates close behind it, and water is let in from above until the level inside matches the upper canal; then the upper gates open. Going down works the other way. A flight of many locks can lift a boat a long way, though passing through it takes patience."),
        ("desert plants", "Plants that live in deserts have many ways of surviving long periods without rain. Cacti store water in thick stems and replace leaves with spines that lose little moisture. Other plants grow very deep roots that reach water far below the surface, and some annual flowers avoid the drought entirely, lying as seeds in the soil for years until a heavy rain arrives. Then they sprout, bloom and set new seed within a few weeks."),
    ]

    /// What users ask about a topic, in the first turn of a chat ({topic} is filled in).
    static let openingQuestions = [
        "Can you explain the basics of {topic}, in plain words?",
        "I am writing a short report on {topic}. What should I know first?",
        "What are the most common misunderstandings about {topic}?",
        "Could you give me a brief history of {topic}?",
        "Why do people find {topic} so interesting?",
        "What would a beginner need to learn about {topic}?",
        "How has our understanding of {topic} changed over the last hundred years?",
        "Please summarise the main ideas behind {topic}.",
    ]

    /// Later turns of a chat.
    static let followUps = [
        "Thanks. Could you give a concrete example?",
        "That helps. What happens if something goes wrong?",
        "Can you say more about the last point?",
        "How would you explain that to a child?",
        "Is there anything surprising about it that most people miss?",
        "Could you put that into a short list of steps?",
        "What are the arguments on the other side?",
        "How does that compare with what you said earlier?",
    ]

    /// Leads for the background that users paste under their question.
    static let backgroundLeads = [
        "Here is what I have read so far:",
        "For context, my notes say:",
        "My textbook puts it like this:",
        "A friend sent me this passage:",
    ]

    /// Questions about a long document ({title} and {topic} are filled in).
    static let documentQuestions = [
        "According to the report on {title}, what does the section on {topic} say is the main challenge?",
        "Summarise what the report on {title} says about {topic} in three sentences.",
        "Which figures does the report on {title} give for the survey, and what do they show?",
        "What does the report on {title} recommend, and on what evidence?",
        "How does the discussion of {topic} in the report on {title} connect to the rest of it?",
        "List the people named in the report on {title} and what each of them did.",
        "What changed between the first and the last survey described in the report on {title}?",
        "Does the report on {title} describe any risks? Quote the relevant sentence.",
    ]

    /// Places a document can be about.
    static let places = [
        "Harrow Vale", "the Linden Estuary", "Coldwater Ridge", "Marlow Bay", "the Upper Fenn",
        "Ashby Crossing", "Greystone Harbour", "the Selby Moors", "Kettering Point", "Oakridge Valley",
        "the Wren Islands", "Blackmere", "Thornbury Downs", "the Avon Flats", "Halden Forest",
    ]

    /// People who appear in documents.
    static let people = [
        "Ada Morrow", "Tomas Reyes", "Helen Okafor", "Ivo Brandt", "Mira Castell", "Owen Pryce",
        "Lena Sato", "Felix Hart", "Nora Quinn", "Samuel Ikeda", "Ruth Alder", "Daniel Voss",
    ]

    /// Roles those people have.
    static let roles = [
        "the survey leader", "a retired engineer", "the harbour master", "a local teacher",
        "the county archivist", "a visiting botanist", "the mayor", "a volunteer recorder",
    ]

    /// Things that documents count.
    static let countedThings = [
        "nesting pairs", "working mills", "street trees", "visitors", "households", "boats",
        "beehives", "footbridges", "wells", "weather stations",
    ]
}

extension Corpus {
    /// The instruction that opens every agent trace (shared by all traces).
    static let agentInstruction = """
        Answer the question by interleaving Thought, Action and Observation steps. A Thought \
        reasons about the situation so far. An Action is one of three kinds: Search[topic], \
        which returns the first paragraph of the encyclopedia entry on the topic; \
        Lookup[keyword], which returns the next sentence of the current entry that contains the \
        keyword; and Finish[answer], which gives the final answer and ends the task. Use as few \
        steps as you can, and never invent an observation. Here are some examples.
        """

    /// Worked examples after the instruction (shared by all traces).
    static let agentExamples = [
        """
        Question: Which instrument does an orchestra tune to before a concert, and why that one?
        Thought: I need to find out how an orchestra tunes. I will search for it.
        Action: Search[tuning an orchestra]
        Observation: Before a concert the oboe plays a single long note, and the rest of the orchestra tunes to it.
        Thought: The entry names the oboe. I still need the reason, so I will look it up.
        Action: Lookup[chosen]
        Observation: The oboe is chosen because its sound is clear and penetrating and because its pitch is hard to adjust.
        Thought: I have both parts of the answer.
        Action: Finish[the oboe, because its clear sound is easy to hear and its pitch is hard to change]
        """,
        """
        Question: What made paper cheap enough for daily newspapers?
        Thought: I should search for how paper is made and look for a change in materials.
        Action: Search[paper making]
        Observation: Paper is made from fibres that are beaten in water until they separate and then caught on a fine screen.
        Thought: This does not mention cost yet. I will look up the word cheap.
        Action: Lookup[cheap]
        Observation: Wood pulp replaced rags in the nineteenth century and made paper cheap enough for daily newspapers.
        Thought: The answer is wood pulp replacing rags.
        Action: Finish[wood pulp, which replaced cotton and linen rags in the nineteenth century]
        """,
        """
        Question: Why do most coasts see two high tides a day?
        Thought: I will search for tides and read how the bulges form.
        Action: Search[ocean tides]
        Observation: Tides rise and fall because the moon and, to a lesser degree, the sun pull on the oceans.
        Thought: I need the part about the second bulge.
        Action: Lookup[bulge]
        Observation: The pull is strongest on the side of the earth facing the moon, and a second bulge forms on the far side.
        Thought: Two bulges, so the earth turns through two high tides a day.
        Action: Finish[the moon raises a bulge of water on the near side and another on the far side, and the earth turns through both each day]
        """,
    ]

    /// The tasks agent traces work on ({topic} and {other} are filled in).
    static let agentTasks = [
        "What connects {topic} with {other}, if anything?",
        "Which came first historically, {topic} or {other}, and what evidence supports that?",
        "Name one problem that {topic} solved and one problem that {other} created.",
        "How do experts measure success in {topic}, and would the same measure work for {other}?",
        "What single fact best explains the importance of {topic}?",
    ]
}
